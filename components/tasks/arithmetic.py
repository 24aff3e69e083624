"""n-digit addition with a `<scratch>` scratchpad (Nye et al. 2021, as used in the STaR paper).

    Input:
    2 9 + 5 7
    Target:
    <scratch>
    2 9 + 5 7 , C: 0
    2 + 5 , 6 C: 1
    , 8 6 C: 0
    0 8 6
    </scratch>
    8 6

The final answer is the line after `</scratch>`; it is scored by exact match, reported by digit count.
"""

from __future__ import annotations

import random
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.core.rows import Example
from components.core.seeds import FEW_SHOT_OFFSET, held_out_pool_seed
from components.tasks.base import Task

_ANSWER_LINE = re.compile(r"^[0-9]+( [0-9]+)*$")


class ArithmeticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["arithmetic"] = "arithmetic"
    min_digits: int = Field(1, ge=1, le=20)
    max_digits: int = Field(5, ge=1, le=20)
    train_size: int = Field(500, ge=1)
    eval_size: int = Field(200, ge=1)
    #: Digit counts of the worked examples in the few-shot prefix (e.g. [2, 3] for a pretrained model). The
    #: demo's built-in base model learned the format in its pre-training, which stands in for the few-shot
    #: prompt, so by default there is no prefix.
    few_shot_digits: list[int] = Field(default_factory=list)
    seed: int = 0

    @model_validator(mode="after")
    def _check_range(self) -> ArithmeticConfig:
        if self.min_digits > self.max_digits:
            raise ValueError(f"min_digits ({self.min_digits}) must not exceed max_digits ({self.max_digits})")
        return self


def spaced(n: int | str) -> str:
    return " ".join(str(n))


def scratchpad(a: int, b: int) -> str:
    """The scratchpad from `<scratch>` to the answer line, for a + b."""
    da, db = list(str(a)), list(str(b))
    result: list[str] = []
    carry = 0
    lines = [f"{' '.join(da)} + {' '.join(db)} , C: {carry}"]
    while da or db:
        x = int(da.pop()) if da else 0
        y = int(db.pop()) if db else 0
        s = x + y + carry
        result.insert(0, str(s % 10))
        carry = s // 10
        left = f"{' '.join(da)} + {' '.join(db)}" if (da or db) else ""
        lines.append(f"{left} , {' '.join(result)} C: {carry}".strip())
    lines.append(" ".join([str(carry), *result]))
    return "<scratch>\n" + "\n".join(lines) + "\n</scratch>\n" + spaced(a + b)


def random_operand(rng: random.Random, digits: int) -> int:
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(lo, 10**digits - 1)


def make_example(a: int, b: int, idx: str) -> Example:
    return Example(
        id=idx, question=f"{spaced(a)} + {spaced(b)}", answer=str(a + b),
        group=f"{max(len(str(a)), len(str(b)))}", extra={"a": a, "b": b},
    )


class ArithmeticTask(Task):
    name = "arithmetic"

    def __init__(self, config: ArithmeticConfig | None = None) -> None:
        self.config = config or ArithmeticConfig()

    def generate(self, n: int, seed: int, prefix: str, digits: list[int] | None = None) -> list[Example]:
        """`n` problems spread evenly over the digit range (both operands of the same length)."""
        rng = random.Random(seed)
        span = digits or list(range(self.config.min_digits, self.config.max_digits + 1))
        out = []
        for i in range(n):
            d = span[i % len(span)]
            out.append(make_example(random_operand(rng, d), random_operand(rng, d), f"{prefix}-{i}"))
        return out

    def load(self, split: str) -> list[Example]:
        c = self.config
        if split == "train":
            return self.generate(c.train_size, c.seed, "train")
        if split == "eval":
            # A different stream of problems; questions shared with the train split are dropped.
            train = {e.question for e in self.load("train")}
            pool = self.generate(c.eval_size * 2 + 50, held_out_pool_seed(c.seed), "eval")
            fresh = [e for e in pool if e.question not in train]
            by_group: dict[str, list[Example]] = {}
            for e in fresh:
                by_group.setdefault(e.group, []).append(e)
            groups = sorted(by_group, key=int)
            out: list[Example] = []
            while len(out) < c.eval_size and any(by_group.values()):
                for g in groups:
                    if by_group[g] and len(out) < c.eval_size:
                        out.append(by_group[g].pop(0))
            return out
        raise ValueError(f"unknown split {split!r}")

    def few_shot(self, *, hint: bool, direct: bool) -> list[str]:
        rng = random.Random(self.config.seed + FEW_SHOT_OFFSET)
        shots = []
        for d in self.config.few_shot_digits:
            a, b = random_operand(rng, d), random_operand(rng, d)
            ex = make_example(a, b, "shot")
            shots.append(self.question(ex, hint=hint, direct=direct) + self.target(ex, direct=direct))
        return shots

    def question(self, example: Example, *, hint: bool, direct: bool) -> str:
        text = f"Input:\n{example.question}\n"
        if hint:
            text += f"Hint: {spaced(example.answer)}\n"
        return text + "Target:\n"

    @staticmethod
    def target(example: Example, *, direct: bool) -> str:
        """The gold completion (used for worked examples and the seed set the tiny base model learns from)."""
        a, b = int(example.extra["a"]), int(example.extra["b"])
        return spaced(a + b) if direct else scratchpad(a, b)

    def extract_answer(self, completion: str, *, direct: bool) -> str | None:
        lines = [ln.strip() for ln in completion.strip("\n").split("\n")]
        if direct:
            line = lines[0] if lines else ""
        else:
            if "</scratch>" not in lines:
                return None
            i = lines.index("</scratch>") + 1
            if i >= len(lines):
                return None
            line = lines[i]
        if not _ANSWER_LINE.match(line):
            return None
        return line.replace(" ", "").lstrip("0") or "0"
