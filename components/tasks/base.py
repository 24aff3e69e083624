"""The task plug-in interface: how rows are read, how prompts are written, how answers are read and scored."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from components.core.rows import Example


class Task(ABC):
    """A STaR task. Prompts are built from a few-shot prefix (worked examples joined by blank lines) and a
    question part; the model's completion is the rationale and the final answer."""

    name: ClassVar[str]
    #: Generation stops at the first of these strings (the blank line that ends a few-shot example).
    stop: ClassVar[tuple[str, ...]] = ("\n\n",)
    #: The task's answers are options a model can rank (`ranking_request`), so MAP@3 is reported.
    ranks_options: ClassVar[bool] = False

    @abstractmethod
    def load(self, split: str) -> list[Example]:
        """The questions of a split ("train" or "eval"); raises StarError naming file, line and field."""

    @abstractmethod
    def few_shot(self, *, hint: bool, direct: bool) -> list[str]:
        """The worked examples of the few-shot prefix (with the hint in the question when `hint`)."""

    @abstractmethod
    def question(self, example: Example, *, hint: bool, direct: bool) -> str:
        """The question part of the prompt; the hint, when given, is the final answer only."""

    @abstractmethod
    def extract_answer(self, completion: str, *, direct: bool) -> str | None:
        """The final answer read out of a completion, or None when there is none."""

    def is_correct(self, prediction: str | None, gold: str) -> bool:
        return prediction is not None and prediction == gold

    # Shared prompt assembly: one way for every task.
    def prefix(self, *, hint: bool, direct: bool, use_few_shot: bool = True) -> str:
        shots = self.few_shot(hint=hint, direct=direct) if use_few_shot else []
        return "".join(shot + "\n\n" for shot in shots)

    def prompt(self, example: Example, *, hint: bool, direct: bool, use_few_shot: bool = True) -> str:
        return self.prefix(hint=hint, direct=direct, use_few_shot=use_few_shot) + self.question(
            example, hint=hint, direct=direct
        )
