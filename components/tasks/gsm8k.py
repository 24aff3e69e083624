"""GSM8K grade-school math (Cobbe et al. 2021), in the STaR reference format.

    Q: Natalia sold clips to 48 of her friends in April, ... How many clips did Natalia sell altogether?
    A: Natalia sold 48/2 = <<48/2=24>>24 clips in May.
    Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.
    #### 72

The hint is the final number only, after the question: `Q: ... altogether? (72)` (the reference release put
the whole gold solution there; we do not). The answer is the number after `####`; numbers compare by value
(`1,000` equals `1000`, `18.0` equals `18`). Calculator annotations `<<48/2=24>>` are text: never evaluated.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from components.core.errors import StarError
from components.core.rows import Example
from components.tasks.data_task import DataTask, DataTaskConfig
from components.tasks.few_shot import ShotSet, check_shot, shots_from_examples, shots_from_files
from components.tasks.row_validation import NonBlank

_ANNOTATION = re.compile(r"<<[^<>]*>>")
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")
_STRICT = re.compile(r"-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\$?\.\d+")
_HINTED = re.compile(r"^(?P<q>.*) \((?P<n>[^()]*)\)$", re.S)


class GSM8KConfig(DataTaskConfig):
    name: Literal["gsm8k"] = "gsm8k"


def to_decimal(text: str) -> Decimal | None:
    """A number written the GSM8K way (`1,000`, `18.0`, `-3`, `$5`, `0.5`), or None."""
    t = text.strip().rstrip(".").strip()
    if not _STRICT.fullmatch(t):
        return None
    try:
        return Decimal(t.replace(",", "").replace("$", ""))
    except InvalidOperation:
        return None


def canonical(value: Decimal) -> str:
    """One spelling per value: `18.0` -> `18`, `1,000` -> `1000`, `0.50` -> `0.5`."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def final_answer(solution: str) -> str:
    """The final answer of a gold solution as written after `####`; ValueError when it is not a number."""
    if "####" not in solution:
        raise ValueError("has no final answer: a gold solution ends with '#### N'")
    written = _ANNOTATION.sub("", solution.rsplit("####", 1)[1]).strip()
    if to_decimal(written) is None:
        raise ValueError(f"final answer {written!r} after '####' is not a number")
    return written


def read_number(text: str) -> str | None:
    """The first number in a read-out (annotations removed as text, never evaluated), canonical; or None."""
    m = _NUMBER.search(_ANNOTATION.sub("", text))
    if not m:
        return None
    value = to_decimal(m.group(0))
    return canonical(value) if value is not None else None


def steps_group(solution: str) -> str:
    """The number of reasoning lines of a gold solution: the class reported separately."""
    steps = len([ln for ln in solution.rsplit("####", 1)[0].split("\n") if ln.strip()])
    return "8+ steps" if steps >= 8 else f"{steps} step" + ("s" if steps != 1 else "")


class GSM8KRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question: NonBlank
    answer: str

    @field_validator("answer")
    @classmethod
    def _has_numeric_final_answer(cls, v: str) -> str:
        final_answer(v)
        return v


class GSM8KTask(DataTask[GSM8KRow]):
    name = "gsm8k"
    row_model = GSM8KRow

    def __init__(self, config: GSM8KConfig) -> None:
        super().__init__(config)

    def examples_of(self, line: int, row: GSM8KRow) -> list[Example]:
        written = final_answer(row.answer)
        value = to_decimal(written)
        assert value is not None  # checked by the row model
        return [Example(id=f"row-{line}", question=row.question, answer=canonical(value),
                        group=steps_group(row.answer), extra={"final": written})]

    def question(self, example: Example, *, hint: bool, direct: bool) -> str:
        text = f"Q: {example.question}"
        if hint:
            text += f" ({example.extra.get('final', example.answer)})"
        return text + "\nA:"

    def extract_answer(self, completion: str, *, direct: bool) -> str | None:
        for line in completion.split("\n"):
            if "####" in line:
                return read_number(line.rsplit("####", 1)[1])
        return None

    def is_correct(self, prediction: str | None, gold: str) -> bool:
        if prediction is None:
            return False
        a, b = to_decimal(prediction), to_decimal(gold)
        return a is not None and b is not None and a == b

    def parse_shot(self, text: str, *, hint: bool, direct: bool) -> tuple[Example, str]:
        if not text.startswith("Q: ") or "\nA:" not in text:
            raise ValueError("it must look like 'Q: <question>\\nA: <rationale>\\n#### <number>'")
        head, completion = text[3:].split("\nA:", 1)
        if hint:
            m = _HINTED.match(head)
            if not m or to_decimal(m.group("n")) is None:
                raise ValueError("its question does not end with the hinted final number, like '... (72)'")
            head, written = m.group("q"), m.group("n")
        else:
            written = self.extract_answer(completion, direct=direct) or ""
        value = to_decimal(written)
        answer = canonical(value) if value is not None else ""
        return Example(id="shot", question=head, answer=answer, extra={"final": written}), completion

    def load_shots(self, *, direct: bool) -> ShotSet:
        from_files = shots_from_files(self, direct=direct)
        if from_files is not None:
            return from_files
        if not direct:
            location, _ = self.prompt_file("prompts.txt")
            raise StarError(f"{location} does not exist; set task.prompts_dir to the folder of the GSM8K "
                            "few-shot files (prompts.txt, prompts_answer_key.txt).")
        # The reference has no direct GSM8K prompts: the worked examples of prompts.txt, answer only.
        rationale = self.shots(direct=False)
        worked = []
        for i, text in enumerate(rationale.plain):
            ex, _, answer = check_shot(self, text, hint=False, direct=False, where=f"prompts.txt, example {i + 1}")
            final = ex.extra["final"]
            worked.append((ex.model_copy(update={"answer": answer}), f" #### {final}"))
        origin = f"{rationale.origin}, answers only (there is no prompts_direct.txt)"
        return shots_from_examples(self, worked, direct=True, origin=origin)
