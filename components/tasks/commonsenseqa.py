"""CommonsenseQA (Talmor et al. 2019), in the STaR reference format.

    Q: What do people use to absorb extra ink from a fountain pen?
    Answer Choices:
    (a) shirt pocket
    ...
    (e) blotter
    A: The answer must be used to absorb extra ink. Blotters are designed to absorb liquids. Therefore, the
    answer is blotter (e).

The hint marks the correct choice `(CORRECT)`. The answer is the letter in "... (e)." at the end of the first
line of the completion. The few-shot examples are the reference files, read character for character.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from components.core.errors import StarError
from components.core.rows import Example
from components.tasks.data_task import DataTask, DataTaskConfig
from components.tasks.few_shot import ShotSet, files_for, shots_from_files
from components.tasks.row_validation import OPTION_LETTERS, NonBlank

LETTERS = OPTION_LETTERS
CORRECT = " (CORRECT)"
_READ_OUT = re.compile(r"\(([a-eA-E])\)\.?\s*$")
_CHOICE_LINE = re.compile(r"^\(([a-e])\) (.*)$", re.S)


# --------------------------------------------------------------------------- lettered choices, shared format


def choices_block(choices: list[tuple[str, str]], correct: str | None = None) -> str:
    """`Answer Choices:` and one `(a) text` line per choice; the correct one marked when given (the hint)."""
    lines = ["Answer Choices:"]
    for label, text in choices:
        mark = CORRECT if correct is not None and label.upper() == correct.upper() else ""
        lines.append(f"({label.lower()}) {text}{mark}")
    return "\n".join(lines) + "\n"


def read_letter(completion: str) -> str | None:
    """The letter in "(e)." at the end of the first non-empty line of a completion, upper case."""
    for line in completion.split("\n"):
        if line.strip():
            m = _READ_OUT.search(line)
            return m.group(1).upper() if m else None
    return None


class ChoiceShot(BaseModel):
    context: str | None
    stem: str
    choices: list[tuple[str, str]]
    marked: str | None
    completion: str


def parse_choice_shot(text: str) -> ChoiceShot:
    """A worked example `[Context: ...\\n]Q: ...\\nAnswer Choices:\\n(a) ...\\nA: ...`; ValueError otherwise."""
    if "\nA:" not in text:
        raise ValueError("it has no answer line starting 'A:'")
    head, completion = text.split("\nA:", 1)
    lines = head.split("\n")
    context = None
    if lines and lines[0].startswith("Context: "):
        context = lines.pop(0)[len("Context: "):]
    if len(lines) < 3 or not lines[0].startswith("Q: ") or lines[1] != "Answer Choices:":
        raise ValueError("it must start 'Q: <question>' followed by a line 'Answer Choices:'")
    choices: list[tuple[str, str]] = []
    marked = None
    for line in lines[2:]:
        m = _CHOICE_LINE.match(line)
        if not m:
            raise ValueError(f"{line!r} is not a choice line like '(a) text'")
        label, choice = m.group(1).upper(), m.group(2)
        if choice.endswith(CORRECT):
            if marked is not None:
                raise ValueError("it marks more than one choice (CORRECT)")
            marked, choice = label, choice[: -len(CORRECT)]
        choices.append((label, choice))
    if [c[0] for c in choices] != list(LETTERS[: len(choices)]):
        raise ValueError("its choices are not lettered (a), (b), ... in order")
    return ChoiceShot(context=context, stem=lines[0][3:], choices=choices, marked=marked, completion=completion)


def shot_answer(shot: ChoiceShot, *, hint: bool) -> str:
    if hint:
        if shot.marked is None:
            raise ValueError("no choice is marked (CORRECT)")
        return shot.marked
    return read_letter(shot.completion) or ""


# ------------------------------------------------------------------------------------------------- rows


class Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    label: str
    text: NonBlank

    @field_validator("label")
    @classmethod
    def _letter(cls, v: str) -> str:
        if v.strip().upper() not in LETTERS:
            raise ValueError(f"{v!r} is not a choice label A-E")
        return v.strip().upper()


class CQAQuestion(BaseModel):
    model_config = ConfigDict(extra="ignore")

    stem: NonBlank
    choices: list[Choice]
    question_concept: str | None = None

    @field_validator("choices")
    @classmethod
    def _five_lettered(cls, v: list[Choice]) -> list[Choice]:
        labels = "".join(c.label for c in v)
        if labels != LETTERS:
            raise ValueError(f"must be five choices labelled A, B, C, D, E in order (got {labels or 'none'})")
        return v


class CQARow(BaseModel):
    """A row of the reference JSONL (`question.stem`, `question.choices`) or of the Hugging Face
    `tau/commonsense_qa` dataset (`question`, `choices.label`, `choices.text`)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    answerKey: str  # noqa: N815 (the data's own field name)
    question: CQAQuestion

    @model_validator(mode="before")
    @classmethod
    def _from_hub_layout(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("question"), str) and isinstance(data.get("choices"), dict):
            c = data["choices"]
            choices = [{"label": lab, "text": t} for lab, t in zip(c.get("label", []), c.get("text", []), strict=False)]
            return {**data, "question": {"stem": data["question"], "choices": choices,
                                         "question_concept": data.get("question_concept")}}
        return data

    @field_validator("answerKey")
    @classmethod
    def _answer_letter(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty (an unlabelled row cannot be scored)")
        if v.strip().upper() not in LETTERS:
            raise ValueError(f"{v!r} is not one of the choice labels A-E")
        return v.strip().upper()


# ------------------------------------------------------------------------------------------------- task


class CommonsenseQAConfig(DataTaskConfig):
    name: Literal["commonsenseqa"] = "commonsenseqa"


class CommonsenseQATask(DataTask[CQARow]):
    name = "commonsenseqa"
    row_model = CQARow

    def __init__(self, config: CommonsenseQAConfig) -> None:
        super().__init__(config)

    def examples_of(self, line: int, row: CQARow) -> list[Example]:
        choices = [[c.label, c.text] for c in row.question.choices]
        return [Example(id=row.id, question=row.question.stem, answer=row.answerKey, extra={"choices": choices})]

    def question(self, example: Example, *, hint: bool, direct: bool) -> str:
        choices = [(str(label), str(text)) for label, text in example.extra["choices"]]
        return f"Q: {example.question}\n" + choices_block(choices, example.answer if hint else None) + "A:"

    def extract_answer(self, completion: str, *, direct: bool) -> str | None:
        return read_letter(completion)

    def parse_shot(self, text: str, *, hint: bool, direct: bool) -> tuple[Example, str]:
        shot = parse_choice_shot(text)
        if shot.context is not None:
            raise ValueError("CommonsenseQA examples have no 'Context:' line")
        ex = Example(id="shot", question=shot.stem, answer=shot_answer(shot, hint=hint),
                     extra={"choices": [list(c) for c in shot.choices]})
        return ex, shot.completion

    def load_shots(self, *, direct: bool) -> ShotSet:
        shots = shots_from_files(self, direct=direct)
        if shots is None:
            location, _ = self.prompt_file(files_for(direct).plain)
            raise StarError(f"{location} does not exist; set task.prompts_dir to the folder of the CommonsenseQA "
                            "few-shot files (prompts.txt, prompts_answer_key.txt, prompts_direct*.txt).")
        return shots
