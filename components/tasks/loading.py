"""Reading task data and few-shot prompt files.

Rows come from JSONL or CSV, from a local path, an `s3://`/`gs://` URL (through `components.storage`: boto3
for s3://, fsspec with gcsfs for gs://) or a Hugging Face dataset (`datasets`, imported on demand). Every row
is validated by the task's pydantic row model; a row that fails is reported with file, line and field and
counted, never dropped silently. Few-shot files are blank-line separated worked examples; each is checked to be
in the task's prompt format and to read out to its own answer.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import sys
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, ClassVar, Generic, NamedTuple, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from components.errors import StarError
from components.rows import Example
from components.tasks.base import Task

OPTION_LETTERS = "ABCDE"


def _non_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("is empty")
    return v


def _option_letter(v: str) -> str:
    if v.strip().upper() not in OPTION_LETTERS:
        raise ValueError(f"{v!r} is not an option letter A-E")
    return v.strip().upper()


#: Row fields shared by the tasks: text that must not be blank, and an option letter A-E (normalised).
NonBlank = Annotated[str, AfterValidator(_non_blank)]
OptionLetter = Annotated[str, AfterValidator(_option_letter)]

R = TypeVar("R", bound=BaseModel)

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv",)
DATA_SUFFIXES = JSONL_SUFFIXES + CSV_SUFFIXES
DATASETS_PIN = "datasets==5.2.0"
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


# ----------------------------------------------------------------------------------------------- row errors


@dataclass(frozen=True)
class RowError:
    """Why one row was rejected: where it is (file and line, or dataset and row) and which field is wrong."""

    source: str
    line: int
    field: str | None
    message: str
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.source}, {self.unit} {self.line}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


@dataclass
class LoadReport(Generic[R]):
    """Every row of a source: the valid ones (with their line numbers) and one error per rejected row."""

    source: str
    rows: list[tuple[int, R]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def read(self) -> int:
        return len(self.rows) + len(self.errors)

    @property
    def rejected(self) -> int:
        return len(self.errors)

    def summary(self) -> str:
        return f"{self.read} rows read, {len(self.rows)} valid, {self.rejected} rejected"


def describe_validation_error(e: ValidationError) -> tuple[str | None, str]:
    """The first problem of a validation error as (field path, message)."""
    errors = e.errors()
    err = errors[0]
    loc = ".".join(str(x) for x in err["loc"]) or None
    msg = str(err["msg"])
    if err["type"] == "missing":
        msg = "is missing"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    elif "input" in err and not isinstance(err["input"], dict | list):
        msg = f"{msg} (got {err['input']!r})"
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''} in this row)"
    return loc, msg


# ------------------------------------------------------------------------------------------------- sources


class MissingFile(StarError):
    """A data or prompt file that is not there."""


def is_url(location: str) -> bool:
    return bool(_URL.match(location))


def is_dataset_id(location: str) -> bool:
    """A Hugging Face dataset: `hf:NAME`, a local folder, or a name that is neither a URL nor an existing file
    and has no data-file suffix (`openai/gsm8k:main@train`)."""
    if location.startswith("hf:"):
        return True
    if is_url(location):
        return False
    path = Path(location)
    if path.is_dir():
        return True
    return not path.exists() and not location.lower().endswith(DATA_SUFFIXES)


def parse_dataset_id(location: str) -> tuple[str, str | None, str]:
    """`[hf:]NAME[:CONFIG][@SPLIT]` as (name, config, split); the split defaults to "train"."""
    spec = location.removeprefix("hf:")
    split = "train"
    if "@" in spec:
        spec, split = spec.rsplit("@", 1)
    config = None
    if ":" in spec and not Path(spec).exists():
        spec, config = spec.split(":", 1)
    if not spec or not split:
        raise StarError(
            f"{location!r} is not a dataset ID; write it as NAME[:CONFIG][@SPLIT], e.g. openai/gsm8k:main@train."
        )
    return spec, config, split


def open_binary(location: str) -> IO[bytes]:
    """A local file, or an object at a URL read whole through the storage layer (s3:// with boto3, gs:// and
    other protocols with fsspec; retried on transient errors); StarError when it does not exist or the
    filesystem package for its protocol is not installed."""
    if not is_url(location):
        path = Path(location)
        if not path.is_file():
            raise MissingFile(f"{location} does not exist; pass the path of a JSONL or CSV data file.")
        return path.open("rb")
    from components import storage

    try:
        data = storage.read_bytes(location)
    except StarError:
        raise
    except Exception as e:  # credentials, permissions, network: the filesystem's own words
        raise StarError(f"Could not open {location}: {e}.") from e
    if data is None:
        raise MissingFile(f"{location} does not exist.")
    return io.BytesIO(data)


def read_text(location: str) -> str | None:
    """The text of a local file or fsspec URL, or None when there is no such file."""
    if not is_url(location):
        path = Path(location)
        return path.read_text(encoding="utf-8") if path.is_file() else None
    try:
        with open_binary(location) as f:
            return f.read().decode("utf-8")
    except MissingFile:
        return None


def join_location(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name if is_url(folder) else str(Path(folder) / name)


def parent_location(location: str) -> str | None:
    """The folder of a data file (local or URL); None for a dataset ID."""
    if is_dataset_id(location):
        return None
    if is_url(location):
        return location.rsplit("/", 1)[0]
    return str(Path(location).resolve().parent)


Record = dict[str, Any] | RowError


def _jsonl_records(source: str, f: IO[bytes]) -> Iterator[tuple[int, Record]]:
    for lineno, raw in enumerate(f, 1):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            yield lineno, RowError(source, lineno, None, f"is not UTF-8 text ({e.reason} at byte {e.start})")
            continue
        if not line.strip():
            continue
        try:
            value = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as e:
            reason = e.msg.removesuffix(" at")
            yield lineno, RowError(source, lineno, None, f"is not valid JSON ({reason} at column {e.colno})")
            continue
        if not isinstance(value, dict):
            yield lineno, RowError(source, lineno, None, f"is a JSON {type(value).__name__}, not an object")
            continue
        yield lineno, value


def _csv_records(source: str, f: IO[bytes], required: tuple[str, ...]) -> Iterator[tuple[int, Record]]:
    text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except (UnicodeDecodeError, csv.Error) as e:
        raise StarError(f"{source}, line 1: the CSV header cannot be read ({e}).") from e
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise StarError(
            f"{source}, line 1: the CSV header lacks the column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)} (it has {', '.join(repr(h) for h in header)})."
        )
    end = reader.line_num
    while True:
        start = end + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as e:
            raise StarError(f"{source}, near line {start}: the file is not UTF-8 text ({e.reason}).") from e
        except csv.Error as e:
            end = reader.line_num
            yield start, RowError(source, start, None, f"is not a valid CSV record ({e})")
            continue
        end = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield start, RowError(source, start, None, f"has {len(values)} fields, the header has {len(header)}")
            continue
        yield start, dict(zip(header, values, strict=True))


def _dataset_records(location: str) -> Iterator[tuple[int, Record]]:
    name, config, split = parse_dataset_id(location)
    try:
        import datasets
    except ImportError as e:
        raise StarError(
            f"{location} is not a local file, so it is read as a Hugging Face dataset ID, which needs the "
            f"`datasets` package; install it with `pip install {DATASETS_PIN}`."
        ) from e
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # the hub's or the builder's own message names the problem
        raise StarError(
            f"Could not load the Hugging Face dataset {name!r} (config {config}, split {split}): {e}."
        ) from e
    for i, row in enumerate(ds, 1):
        yield i, dict(row)


def iter_records(location: str, required_columns: tuple[str, ...] = ()) -> Iterator[tuple[int, Record]]:
    """Raw records of a source as (line or row number, dict or RowError)."""
    if is_dataset_id(location):
        yield from _dataset_records(location)
        return
    suffix = location.lower().rsplit("/", 1)[-1]
    with open_binary(location) as f:
        if suffix.endswith(CSV_SUFFIXES):
            yield from _csv_records(location, f, required_columns)
        elif suffix.endswith(JSONL_SUFFIXES):
            yield from _jsonl_records(location, f)
        else:
            raise StarError(
                f"{location} is neither JSONL (.jsonl, .ndjson, .json) nor CSV (.csv); rename it or convert it."
            )


def load_rows(location: str, model: type[R], required_columns: tuple[str, ...] = ()) -> LoadReport[R]:
    """Every record of a source validated by `model`: valid rows and one RowError per rejected row."""
    unit = "row" if is_dataset_id(location) else "line"
    report: LoadReport[R] = LoadReport(source=location)
    for lineno, record in iter_records(location, required_columns):
        if isinstance(record, RowError):
            report.errors.append(record)
            continue
        try:
            report.rows.append((lineno, model.model_validate(record)))
        except ValidationError as e:
            loc, msg = describe_validation_error(e)
            report.errors.append(RowError(location, lineno, loc, msg, unit))
    return report


# -------------------------------------------------------------------------------------------------- splits


def split_indices(n: int, split: str, *, eval_size: int, train_size: int | None, seed: int) -> list[int]:
    """Row indices of a split: `eval_size` rows held out at random (seeded), the rest (optionally capped at
    `train_size`) for training; both in file order and disjoint."""
    if split not in ("train", "eval"):
        raise ValueError(f"unknown split {split!r}")
    if eval_size >= n:
        raise StarError(f"eval_size {eval_size} leaves no training rows: the data holds {n} valid rows.")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    if split == "eval":
        return sorted(order[:eval_size])
    rest = order[eval_size:]
    return sorted(rest if train_size is None else rest[:train_size])


# --------------------------------------------------------------------------------------- configs and tasks


class DataTaskConfig(BaseModel):
    """Settings shared by the tasks that read a data file."""

    model_config = ConfigDict(extra="forbid")

    #: A JSONL or CSV file (local, s3://, gs://) or a Hugging Face dataset ID `NAME[:CONFIG][@SPLIT]`.
    path: str
    #: The folder of the few-shot files (prompts.txt, prompts_answer_key.txt, ...); default: the data's folder.
    prompts_dir: str | None = None
    #: Rows held out for evaluation (seeded, disjoint from training).
    eval_size: int = Field(200, ge=1)
    #: At most this many training rows (default: all the others).
    train_size: int | None = Field(None, ge=1)
    seed: int = 0
    #: Leave out rows that fail validation (they are counted and reported) instead of stopping.
    skip_invalid: bool = False

    @field_validator("path", "prompts_dir")
    @classmethod
    def _absolute_local_paths(cls, v: str | None) -> str | None:
        """Local paths are made absolute, so pipeline steps running elsewhere find the same file."""
        if v is None or is_url(v) or v.startswith("hf:"):
            return v
        p = Path(v).expanduser()
        return str(p.resolve()) if p.exists() else v

    def prompts_folder(self) -> str | None:
        return self.prompts_dir or parent_location(self.path)


class DataTask(Task, Generic[R]):
    """A task whose questions come from a data file: rows validated by `row_model`, each row giving one or
    more examples, split into train and eval by row."""

    row_model: ClassVar[type[BaseModel]]
    #: CSV sources must have these columns.
    required_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: DataTaskConfig) -> None:
        self.config = config
        self._report: LoadReport[R] | None = None
        self._shots: dict[bool, ShotSet] = {}

    # rows and examples
    def read(self) -> LoadReport[R]:
        """All rows of the data, valid and rejected (cached)."""
        if self._report is None:
            self._report = load_rows(self.config.path, self.row_model, self.required_columns)  # type: ignore[arg-type]
        return self._report

    def valid_rows(self) -> list[tuple[int, R]]:
        report = self.read()
        if report.errors:
            if not self.config.skip_invalid:
                raise StarError(
                    f"{report.errors[0]} ({report.rejected} of {report.read} rows rejected; `star data check` "
                    "lists them; fix them, or set task.skip_invalid to leave them out)."
                )
            print(f"warning: {self.config.path}: {report.summary()}; the rejected rows are left out "
                  f"(first: {report.errors[0]})", file=sys.stderr)
        return report.rows

    @abstractmethod
    def examples_of(self, line: int, row: R) -> list[Example]:
        """The examples one valid row gives (its gold answer already checked by the row model)."""

    def all_examples(self) -> list[Example]:
        return [ex for line, row in self.valid_rows() for ex in self.examples_of(line, row)]

    def load(self, split: str) -> list[Example]:
        rows = self.valid_rows()
        c = self.config
        idx = split_indices(len(rows), split, eval_size=c.eval_size, train_size=c.train_size, seed=c.seed)
        return [ex for i in idx for ex in self.examples_of(*rows[i])]

    # few-shot examples
    @abstractmethod
    def parse_shot(self, text: str, *, hint: bool, direct: bool) -> tuple[Example, str]:
        """A worked example of a prompt file as (example, completion); ValueError when it is not in the task's
        format. With `hint`, the example's answer is the one the hint gives."""

    @abstractmethod
    def load_shots(self, *, direct: bool) -> ShotSet:
        """The few-shot examples of a mode (from the prompt files, derived, or built in)."""

    def shots(self, *, direct: bool) -> ShotSet:
        if direct not in self._shots:
            self._shots[direct] = self.load_shots(direct=direct)
        return self._shots[direct]

    def few_shot(self, *, hint: bool, direct: bool) -> list[str]:
        s = self.shots(direct=direct)
        return list(s.hint if hint else s.plain)

    def prompt_file(self, name: str) -> tuple[str, str | None]:
        """(location, text or None) of a file in the prompts folder."""
        folder = self.config.prompts_folder()
        if folder is None:
            return name, None
        location = join_location(folder, name)
        return location, read_text(location)


# ---------------------------------------------------------------------------------------- few-shot files


class ShotFiles(NamedTuple):
    plain: str
    hint: str


RATIONALE_FILES = ShotFiles("prompts.txt", "prompts_answer_key.txt")
DIRECT_FILES = ShotFiles("prompts_direct.txt", "prompts_direct_answer_key.txt")


def files_for(direct: bool) -> ShotFiles:
    return DIRECT_FILES if direct else RATIONALE_FILES


@dataclass(frozen=True)
class ShotSet:
    """The worked examples of one mode, without and with the hint, and where they came from."""

    plain: list[str]
    hint: list[str]
    origin: str
    answers: list[str]


def split_shots(text: str) -> list[str]:
    """Blank-line separated worked examples, exactly as the reference reads them (`text.split("\\n\\n")`);
    Windows line ends and the newline an editor adds at the end of a file are not part of the last example."""
    text = text.replace("\r\n", "\n").removesuffix("\n")
    return text.split("\n\n")


def check_shot(task: DataTask, text: str, *, hint: bool, direct: bool, where: str) -> tuple[Example, str, str]:
    """Parse a worked example, check that the task writes its question part character for character, and that
    its rationale reads out to an answer (with a hint: to the hinted answer). Returns (example, completion,
    answer)."""
    try:
        ex, completion = task.parse_shot(text, hint=hint, direct=direct)
    except ValueError as e:
        raise StarError(f"{where} is not a {task.name} worked example: {e}.") from e
    rendered = task.question(ex, hint=hint, direct=direct) + completion
    if rendered != text:
        same = (i for i, (a, b) in enumerate(zip(rendered, text, strict=False)) if a != b)
        at = next(same, min(len(rendered), len(text)))
        raise StarError(
            f"{where} differs from the {task.name} prompt format at character {at} "
            f"(the file has {text[at:at + 30]!r}, the task writes {rendered[at:at + 30]!r})."
        )
    answer = task.extract_answer(completion, direct=direct)
    if answer is None:
        raise StarError(f"{where}: its rationale has no final answer the {task.name} read-out finds.")
    if hint and not task.is_correct(answer, ex.answer):
        raise StarError(f"{where}: its rationale reads out to {answer!r}, but its hint gives {ex.answer!r}.")
    return ex, completion, answer


def shots_from_files(task: DataTask, *, direct: bool) -> ShotSet | None:
    """The worked examples of a mode from the prompt files, each checked; None when the plain file is absent.
    Without a hint file, the hint examples are derived from the plain ones (the hint marks their answer)."""
    files = files_for(direct)
    plain_loc, plain_text = task.prompt_file(files.plain)
    if plain_text is None:
        return None
    plain = split_shots(plain_text)
    parsed = [check_shot(task, t, hint=False, direct=direct, where=f"{plain_loc}, example {i + 1}")
              for i, t in enumerate(plain)]
    hint_loc, hint_text = task.prompt_file(files.hint)
    if hint_text is None:
        hints = []
        for ex, completion, answer in parsed:
            hinted = ex.model_copy(update={"answer": answer})
            hints.append(task.question(hinted, hint=True, direct=direct) + completion)
        return ShotSet(plain, hints, f"{plain_loc} (hint examples derived from it)", [a for _, _, a in parsed])
    hints = split_shots(hint_text)
    if len(hints) != len(plain):
        raise StarError(f"{hint_loc} holds {len(hints)} worked examples, {plain_loc} holds {len(plain)}; "
                        "they must be the same examples.")
    answers = []
    for i, (t, (ex, _, answer)) in enumerate(zip(hints, parsed, strict=True)):
        where = f"{hint_loc}, example {i + 1}"
        hex_, _, hanswer = check_shot(task, t, hint=True, direct=direct, where=where)
        if hex_.question != ex.question:
            raise StarError(f"{where} asks a different question than example {i + 1} of {plain_loc}.")
        if not task.is_correct(answer, hex_.answer):
            raise StarError(f"{plain_loc}, example {i + 1}: its rationale reads out to {answer!r}, but the "
                            f"hint of the same example in {hint_loc} gives {hex_.answer!r}.")
        answers.append(hanswer)
    return ShotSet(plain, hints, f"{plain_loc} and {hint_loc}", answers)


def shots_from_examples(
    task: Task, worked: list[tuple[Example, str]], *, direct: bool, origin: str
) -> ShotSet:
    """Worked examples given as (example, completion), written in the task's prompt format."""
    plain = [task.question(ex, hint=False, direct=direct) + c for ex, c in worked]
    hints = [task.question(ex, hint=True, direct=direct) + c for ex, c in worked]
    return ShotSet(plain, hints, origin, [ex.answer for ex, _ in worked])
