"""Tasks whose questions come from a data file: their shared settings (`DataTaskConfig`), the rows-to-examples
plumbing and the seeded train/eval split of `DataTask`, and where their few-shot files are read from."""

from __future__ import annotations

import random
import sys
from abc import abstractmethod
from pathlib import Path
from typing import ClassVar, Generic

from pydantic import BaseModel, ConfigDict, Field, field_validator

from components.core.errors import StarError
from components.core.rows import Example
from components.storage import is_url, join_location, read_text
from components.tasks.base import Task
from components.tasks.few_shot import ShotSet
from components.tasks.records import parent_location
from components.tasks.row_validation import LoadReport, R, load_rows


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
