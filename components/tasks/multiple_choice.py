"""Multiple-choice science questions in the Kaggle LLM Science Exam format: CSV (or JSONL) columns
`prompt,A,B,C,D,E,answer`, an optional `id`, and an optional `context` for open-book questions.

The prompt is the CommonsenseQA format, with the context first:

    Context: <retrieved text, cut to `context_chars` characters>
    Q: Which gas makes up most of Earth's atmosphere?
    Answer Choices:
    (a) oxygen
    ...
    A: The answer must be ... Therefore, the answer is nitrogen (c).

The context is cut, never the question: a long context cannot crowd the question out of the model's window.
Scored by accuracy and MAP@3; `ranking_request` gives what the hf backend needs to rank the letters by option
log-likelihood (components/backends/ranking.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.core.rows import Example
from components.tasks.commonsenseqa import (
    LETTERS,
    choices_block,
    parse_choice_shot,
    read_letter,
    shot_answer,
)
from components.tasks.data_task import DataTask, DataTaskConfig
from components.tasks.few_shot import ShotSet, shots_from_examples, shots_from_files
from components.tasks.row_validation import NonBlank, OptionLetter

_SPACE = re.compile(r"\s+")
ANSWER_IS = "the answer is"

#: Worked examples used when the prompts folder has no prompts.txt: (question, choices, answer, rationale).
BUILTIN_SHOTS: list[tuple[str, list[str], str, str]] = [
    (
        "Which gas makes up most of Earth's atmosphere?",
        ["oxygen", "carbon dioxide", "nitrogen", "argon", "water vapor"],
        "C",
        "The answer must be the most abundant gas in air. Dry air is about 78% nitrogen and 21% oxygen. "
        "Therefore, the answer is nitrogen (c).",
    ),
    (
        "What is the SI unit of electrical resistance?",
        ["volt", "ohm", "ampere", "watt", "farad"],
        "B",
        "The answer must be a unit that measures resistance. Resistance is the ratio of voltage to current and "
        "is measured in ohms. Therefore, the answer is ohm (b).",
    ),
    (
        "Which organelle carries out photosynthesis in plant cells?",
        ["mitochondrion", "nucleus", "ribosome", "Golgi apparatus", "chloroplast"],
        "E",
        "The answer must be where light energy is turned into sugar. Photosynthesis takes place in "
        "chloroplasts, which hold chlorophyll. Therefore, the answer is chloroplast (e).",
    ),
]


class MultipleChoiceConfig(DataTaskConfig):
    name: Literal["multiple_choice"] = "multiple_choice"
    #: Character budget of an open-book context; longer contexts are cut (0: leave contexts out).
    context_chars: int = Field(1500, ge=0)


class MCRow(BaseModel):
    """A row of the LLM Science Exam CSV: at least two options from A on, the answer one of them."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    prompt: NonBlank
    A: NonBlank
    B: NonBlank
    C: str | None = None
    D: str | None = None
    E: str | None = None
    answer: OptionLetter
    context: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise_cells(cls, data: object) -> object:
        """Blank optional cells are absent; numbers (JSONL) are text."""
        if not isinstance(data, dict):
            return data
        data = {k: (str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v) for k, v in data.items()}
        for key in ("id", "C", "D", "E", "context"):
            value = data.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                data[key] = None
        return data



    @model_validator(mode="after")
    def _options_contiguous(self) -> MCRow:
        present = [x is not None for x in (self.A, self.B, self.C, self.D, self.E)]
        n = present.index(False) if False in present else 5
        if any(present[n:]):
            raise ValueError(f"option {LETTERS[present.index(True, n)]} is given but option {LETTERS[n]} is empty")
        if LETTERS.index(self.answer) >= n:
            raise ValueError(f"answer {self.answer!r} is not one of the options A-{LETTERS[n - 1]}")
        return self

    def options(self) -> list[str]:
        return [x for x in (self.A, self.B, self.C, self.D, self.E) if x is not None]


def fit_context(context: str, budget: int) -> str:
    """The context on one line, cut at a word boundary to at most `budget` characters (marked with `…`)."""
    text = _SPACE.sub(" ", context).strip()
    if len(text) <= budget:
        return text
    cut = text[: max(budget - 1, 0)]
    space = cut.rfind(" ")
    if space > budget // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def ranking_from_scores(letters: Sequence[str], scores: Sequence[float], k: int = 3) -> list[str]:
    """The `k` best letters by score (ties: the earlier letter first)."""
    order = sorted(range(len(letters)), key=lambda i: (-scores[i], i))
    return [letters[i] for i in order[:k]]


class MultipleChoiceTask(DataTask[MCRow]):
    name = "multiple_choice"
    ranks_options = True
    row_model = MCRow
    required_columns = ("prompt", "A", "B", "answer")
    config: MultipleChoiceConfig

    def __init__(self, config: MultipleChoiceConfig) -> None:
        super().__init__(config)

    def examples_of(self, line: int, row: MCRow) -> list[Example]:
        options = row.options()
        choices = [[LETTERS[i], text] for i, text in enumerate(options)]
        context = row.context if row.context and row.context.strip() else None
        return [Example(
            id=row.id or f"row-{line}", question=row.prompt, answer=row.answer,
            group="open-book" if context else "closed-book",
            extra={"choices": choices, **({"context": context} if context else {})},
        )]

    @staticmethod
    def choices_of(example: Example) -> list[tuple[str, str]]:
        return [(str(label), str(text)) for label, text in example.extra["choices"]]

    def question(self, example: Example, *, hint: bool, direct: bool) -> str:
        text = ""
        context = example.extra.get("context")
        if context and self.config.context_chars > 0:
            text = f"Context: {fit_context(str(context), self.config.context_chars)}\n"
        text += f"Q: {example.question}\n"
        return text + choices_block(self.choices_of(example), example.answer if hint else None) + "A:"

    def extract_answer(self, completion: str, *, direct: bool) -> str | None:
        return read_letter(completion)

    def ranking_request(self, example: Example, completion: str, *, direct: bool) -> tuple[str, list[str], list[str]]:
        """What to score to rank the letters: (question part of the prompt plus the rationale up to "the answer
        is", the continuation of each option, the letters). Append it to the few-shot prefix for the full
        prompt. Direct mode scores ` (a).`, ...; rationale mode ` <option text> (a).`, ... after the model's own
        rationale (its first line, cut before its final answer)."""
        choices = self.choices_of(example)
        letters = [label for label, _ in choices]
        prompt = self.question(example, hint=False, direct=direct)
        if direct:
            return prompt, [f" ({label.lower()})." for label in letters], letters
        first = next((ln for ln in completion.split("\n") if ln.strip()), "")
        at = first.lower().rfind(ANSWER_IS)
        if at >= 0:
            rationale = first[: at + len(ANSWER_IS)]
        else:  # no final answer: the rationale as it stands, then the answer
            rationale = first.rstrip() + " Therefore, the answer is"
        return prompt + rationale, [f" {text} ({label.lower()})." for label, text in choices], letters

    def parse_shot(self, text: str, *, hint: bool, direct: bool) -> tuple[Example, str]:
        shot = parse_choice_shot(text)
        extra: dict[str, object] = {"choices": [list(c) for c in shot.choices]}
        if shot.context is not None:
            extra["context"] = shot.context
        ex = Example(id="shot", question=shot.stem, answer=shot_answer(shot, hint=hint), extra=extra)
        return ex, shot.completion

    def load_shots(self, *, direct: bool) -> ShotSet:
        shots = shots_from_files(self, direct=direct)
        if shots is not None:
            return shots
        worked = []
        for i, (question, options, answer, rationale) in enumerate(BUILTIN_SHOTS):
            ex = Example(id=f"builtin-{i + 1}", question=question, answer=answer,
                         extra={"choices": [[LETTERS[j], o] for j, o in enumerate(options)]})
            worked.append((ex, f" ({answer.lower()})." if direct else f" {rationale}"))
        return shots_from_examples(self, worked, direct=direct, origin="built-in science examples")
