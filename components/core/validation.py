"""Pydantic validation errors in words: which field is wrong and why, the same way for run configurations,
task settings and data rows.

- The field is its dotted path (`training.schedule.kind`, `question.choices.3.label`), without the
  `function-after[...]` steps pydantic adds for validators.
- A missing field "is missing"; an unknown one gets the caller's wording ("is not a known setting").
- A message of our own validators (pydantic's "Value error, ..." errors) is shown as written: it names the value
  when that helps. Pydantic's own messages (types, ranges, choices) are followed by the value that was given,
  shortened, unless it is a mapping or a list (a whole section is long, and may hold a credential).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

UNKNOWN_FIELD = "is not a known field (check the spelling)"
_SHOWN_VALUE_CHARS = 120


def field_path(err: ErrorDetails, skip: int = 0) -> str | None:
    """The dotted path of the field an error is about (None: the whole input). `skip` leading parts are left out
    (e.g. the tag of a discriminated union validated on its own)."""
    parts = [str(x) for x in err["loc"][skip:]]
    return ".".join(p for p in parts if not p.startswith("function-")) or None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_VALUE_CHARS else text[: _SHOWN_VALUE_CHARS - 3] + "..."


def problem_message(err: ErrorDetails, unknown: str = UNKNOWN_FIELD) -> str:
    """What is wrong with the field, as the predicate of a sentence ("is missing", "must be ...")."""
    kind = err["type"]
    if kind == "missing":
        return "is missing"
    if kind == "extra_forbidden":
        return unknown
    msg = str(err["msg"])
    if kind == "value_error" or msg.startswith("Value error, "):
        return msg.removeprefix("Value error, ")
    if "input" in err and not isinstance(err["input"], dict | list):
        return f"{msg} (got {_shown(err['input'])})"
    return msg


def problems(e: ValidationError, *, skip: int = 0, unknown: str = UNKNOWN_FIELD) -> list[tuple[str | None, str]]:
    """Every problem of a validation error as (field path or None, message)."""
    return [(field_path(err, skip), problem_message(err, unknown)) for err in e.errors()]


def first_problem(
    e: ValidationError, *, skip: int = 0, unknown: str = UNKNOWN_FIELD, where: str = "this row"
) -> tuple[str | None, str]:
    """The first problem as (field path or None, message); the message counts the others (in `where`)."""
    found = problems(e, skip=skip, unknown=unknown)
    loc, msg = found[0]
    if len(found) > 1:
        more = len(found) - 1
        msg += f" (and {more} more problem{'s' if more > 1 else ''} in {where})"
    return loc, msg


def describe_problems(e: ValidationError, *, default: str, skip: int = 0, unknown: str = UNKNOWN_FIELD) -> str:
    """Every problem as `field: message`, joined by "; " (`default` names the field of an error about the whole
    input)."""
    return "; ".join(f"{loc or default}: {msg}" for loc, msg in problems(e, skip=skip, unknown=unknown))
