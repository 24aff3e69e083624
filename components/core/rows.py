"""Rows that cross a step boundary. Every artifact holding rows is JSONL of one of these models."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.core.errors import StarError
from components.core.validation import first_problem

#: Where a rationale came from: generated, rationalized with the answer as a hint, or (the same-compute control
#: and the demo's pre-training) a worked example of the built-in base model's seed set.
Source = Literal["generation", "rationalization", "seed"]


class Example(BaseModel):
    """One question of a task, normalised: what a prompt is built from and what an answer is scored against."""

    model_config = ConfigDict(extra="forbid")

    id: str
    question: str
    answer: str
    group: str = "all"  # the class reported separately (arithmetic: digit count)
    extra: dict[str, Any] = Field(default_factory=dict)


class Attempt(BaseModel):
    """One generated rationale for one question, scored."""

    model_config = ConfigDict(extra="forbid")

    id: str
    group: str
    source: Source
    sample: int = 0
    prompt: str  # the prompt saved for fine-tuning: always hint-free unless p_show_hint_save said otherwise
    completion: str  # rationale + final answer, as generated
    prediction: str | None
    correct: bool


class TrainExample(BaseModel):
    """One kept rationale: the fine-tuning set is a list of these. Loss falls on `completion` only."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source: Source
    prompt: str
    completion: str


class SetStats(BaseModel):
    """What the fine-tuning set of one iteration is made of."""

    train_questions: int
    solved_by_generation: int
    solved_by_rationalization: int
    train_examples: int
    kept_generation: int
    kept_rationalization: int


class TrainStats(BaseModel):
    train_steps: int
    train_loss: float | None
    trained_from: Literal["base", "previous"]
    method: Literal["lora", "full"]


class IterationRecord(BaseModel):
    """One line of summary.json."""

    iteration: int
    eval_accuracy: float
    eval_accuracy_by_group: dict[str, float] = Field(default_factory=dict)
    eval_questions: int
    #: maj@k, pass@k, map@3 where configured
    eval_metrics: dict[str, float] = Field(default_factory=dict)
    train_questions: int = 0
    solved_by_generation: int = 0
    solved_by_rationalization: int = 0
    train_examples: int = 0
    train_steps: int = 0
    train_loss: float | None = None
    samples: list[Attempt] = Field(default_factory=list)


Row = TypeVar("Row", bound=BaseModel)


def write_rows(path: str | Path, rows: Iterable[BaseModel]) -> int:
    """Write rows as JSONL through a temporary file, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(row.model_dump_json() + "\n")
            n += 1
    tmp.replace(path)
    return n


def iter_rows(path: str | Path, model: type[Row]) -> Iterator[Row]:
    path = Path(path)
    if not path.exists():
        raise StarError(f"{path} does not exist; the step that writes it must run first.")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield model.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as e:
                raise StarError(f"{path}, line {lineno}: not a valid {model.__name__} row ({_first_error(e)}).") from e


def read_rows(path: str | Path, model: type[Row]) -> list[Row]:
    return list(iter_rows(path, model))


def _first_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        loc, msg = first_problem(e)
        return f"field '{loc or 'row'}': {msg}"
    return str(e)
