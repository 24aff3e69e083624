"""Task rows validated by their task's row model: the field types the tasks share (non-blank text, an option
letter A-E), and `load_rows`, whose `LoadReport` holds the valid rows and one `RowError` (file and line, or
dataset and row, and the field to fix) per rejected row, counted, never dropped silently."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ValidationError

from components.core.validation import first_problem
from components.tasks.records import RowError, is_dataset_id, iter_records

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
            loc, msg = first_problem(e)
            report.errors.append(RowError(location, lineno, loc, msg, unit))
    return report
