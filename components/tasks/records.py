"""Task data records: the raw rows of a JSONL or CSV file (a local path, `file://`, or an `s3://` / `gs://` URL
read through `components.storage`: boto3 for s3://, fsspec with gcsfs for gs://) or of a Hugging Face dataset
(`datasets`, imported on demand). A record that cannot be read (not UTF-8, not JSON, a short CSV line) is a
`RowError` in its place, never dropped silently; `row_validation` then checks the others against the task's
row model."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from components.core.errors import StarError
from components.storage import is_remote, is_url, local_path, read_bytes

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv",)
DATA_SUFFIXES = JSONL_SUFFIXES + CSV_SUFFIXES
DATASETS_PIN = "datasets==5.2.0"


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


class MissingFile(StarError):
    """A data or prompt file that is not there."""


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
    """A local file (a path or `file://`), or an object at a remote URL read whole through the storage layer
    (s3:// with boto3, gs:// and other protocols with fsspec; retried on transient errors); StarError when it
    does not exist or the filesystem package for its protocol is not installed."""
    if not is_remote(location):
        path = Path(local_path(location))
        if not path.is_file():
            raise MissingFile(f"{location} does not exist; pass the path of a JSONL or CSV data file.")
        return path.open("rb")
    try:
        data = read_bytes(location)
    except StarError:
        raise
    except Exception as e:  # credentials, permissions, network: the filesystem's own words
        raise StarError(f"Could not open {location}: {e}.") from e
    if data is None:
        raise MissingFile(f"{location} does not exist.")
    return io.BytesIO(data)


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
