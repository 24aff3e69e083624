"""Logic reasoning (Datawhale AI summer camp, round 1; seed 003): a `problem` with several `questions`, each a
single-choice sub-question with up to five `options` (lettered A..E) and an `answer` letter. Answers follow
the closed-world assumption: a fact that is not given and cannot be inferred is false.

Each sub-question is one example. The prompt (the baseline's, with the closed-world instruction in every
question, so it stays when the few-shot prefix is dropped):

    你是一个逻辑推理专家，……最后一行的格式为"答案是：A"。题目如下：
    ### 题目：
    <problem>
    ### 问题：
    <sub-question>
    A. <option>
    B. <option>
    ### 解答：
    <rationale>
    答案是：B

The answer is the letter of `答案是：X` on the last line. Blank lines inside a problem become single line
breaks, so a blank line only ever separates worked examples. Scored by accuracy over sub-questions, reported
by number of options.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from components.core.rows import Example
from components.tasks.data_task import DataTask, DataTaskConfig
from components.tasks.few_shot import ShotSet, shots_from_examples, shots_from_files
from components.tasks.row_validation import OPTION_LETTERS, NonBlank, OptionLetter

LETTERS = OPTION_LETTERS
INSTRUCTION = (
    "你是一个逻辑推理专家，擅长解决逻辑推理问题。以下是一个逻辑推理的题目，形式为单项选择题。"
    "所有的问题都是闭世界假设（closed-world assumption），即未观测事实或者无法推断的事实都为假。"
)
RATIONALE_ASK = '请逐步分析问题，并在最后一行输出答案，最后一行的格式为"答案是：A"。题目如下：'
DIRECT_ASK = '请直接输出答案，格式为"答案是：A"。题目如下：'
PROBLEM, QUESTION, SOLUTION = "### 题目：", "### 问题：", "### 解答："
_BLANK_LINES = re.compile(r"\n\s*\n")
_READ_OUT = re.compile(r"答案\s*(?:是|为)\s*[：:]?\s*[*\"“「(（]*\s*([A-Ea-e])(?![A-Za-z])")
_OPTION_LINE = re.compile(r"^([A-E])\. (.*)$")
_HINT = re.compile(r"^（提示：正确答案是 ([A-E])）$")

#: Worked examples used when the prompts folder has no prompts.txt: (problem, question, options, answer,
#: rationale). Written for this project, not taken from the data.
BUILTIN_SHOTS: list[tuple[str, str, list[str], str, str]] = [
    (
        "有三个人：小明、小红和小刚。已知以下事实：\n1. 小明喜欢苹果。\n2. 小红喜欢香蕉。\n3. 小刚喜欢苹果和橙子。\n"
        "根据以上事实，回答以下选择题：",
        "选择题 1：\n小红喜欢苹果吗？",
        ["是", "否"],
        "B",
        "已知事实中关于小红的只有“小红喜欢香蕉”，没有任何事实说明小红喜欢苹果，也无法由其他事实推出。"
        "根据闭世界假设，无法推断的事实为假，所以小红不喜欢苹果，应选“否”，即选项 B。",
    ),
    (
        "一个数列的第一项是 2，之后的每一项都是前一项的 3 倍。\n根据上述规则，回答以下选择题：",
        "选择题 1：\n这个数列的第 4 项是多少？",
        ["54", "18", "162", "24"],
        "A",
        "第 1 项是 2，第 2 项是 2×3=6，第 3 项是 6×3=18，第 4 项是 18×3=54。所以第 4 项是 54，对应选项 A。",
    ),
    (
        "甲、乙、丙、丁四人参加跑步比赛，名次各不相同。已知：\n1. 甲比乙先到达终点。\n2. 丙是第一名。\n"
        "3. 丁比甲先到达终点。\n根据以上信息，回答以下选择题：",
        "选择题 1：\n谁是最后一名？",
        ["甲", "丙", "乙", "丁"],
        "C",
        "丙是第一名。丁比甲先到，甲又比乙先到，所以其余三人的顺序是丁、甲、乙，完整名次为丙、丁、甲、乙。"
        "最后一名是乙，对应选项 C。",
    ),
]


class LogicConfig(DataTaskConfig):
    """`eval_size` and `train_size` count problems: the sub-questions of a problem stay in one split."""

    name: Literal["logic"] = "logic"
    eval_size: int = Field(100, ge=1)


def one_paragraph(text: str) -> str:
    """Blank lines become single line breaks (a blank line separates worked examples)."""
    return _BLANK_LINES.sub("\n", text.strip())


class SubQuestion(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question: NonBlank
    options: list[str] = Field(min_length=2, max_length=5)
    answer: OptionLetter

    @field_validator("options", mode="before")
    @classmethod
    def _numbers_are_text(cls, v: object) -> object:
        if isinstance(v, list | tuple):
            return [str(o) if isinstance(o, int | float) and not isinstance(o, bool) else o for o in v]
        return v



    @model_validator(mode="after")
    def _answer_is_an_option(self) -> SubQuestion:
        n = len(self.options)
        if LETTERS.index(self.answer) >= n:
            raise ValueError(f"answer {self.answer!r} is not one of the {n} options A-{LETTERS[n - 1]}")
        return self


class LogicRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    problem: str
    questions: list[SubQuestion] = Field(min_length=1)

    @field_validator("problem")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty")
        return v


class LogicTask(DataTask[LogicRow]):
    name = "logic"
    row_model = LogicRow

    def __init__(self, config: LogicConfig) -> None:
        super().__init__(config)

    def examples_of(self, line: int, row: LogicRow) -> list[Example]:
        return [
            Example(
                id=f"{row.id}-{k}", question=q.question, answer=q.answer, group=f"{len(q.options)} options",
                extra={"problem": row.problem, "options": list(q.options)},
            )
            for k, q in enumerate(row.questions, 1)
        ]

    def question(self, example: Example, *, hint: bool, direct: bool) -> str:
        options = "\n".join(f"{LETTERS[i]}. {' '.join(str(o).split())}" for i, o in enumerate(example.extra["options"]))
        text = (
            f"{INSTRUCTION}{DIRECT_ASK if direct else RATIONALE_ASK}\n"
            f"{PROBLEM}\n{one_paragraph(str(example.extra['problem']))}\n"
            f"{QUESTION}\n{one_paragraph(example.question)}\n{options}\n"
        )
        if hint:
            text += f"（提示：正确答案是 {example.answer}）\n"
        return text + f"{SOLUTION}\n"

    def extract_answer(self, completion: str, *, direct: bool) -> str | None:
        lines = [ln for ln in completion.strip().split("\n") if ln.strip()]
        if not lines:
            return None
        m = _READ_OUT.search(lines[-1])
        return m.group(1).upper() if m else None

    def parse_shot(self, text: str, *, hint: bool, direct: bool) -> tuple[Example, str]:
        head_ask = INSTRUCTION + (DIRECT_ASK if direct else RATIONALE_ASK)
        if not text.startswith(head_ask + "\n" + PROBLEM + "\n"):
            raise ValueError(f"it must start with the instruction and '{PROBLEM}'")
        body = text[len(head_ask) + len(PROBLEM) + 2:]
        if f"\n{QUESTION}\n" not in body or f"\n{SOLUTION}\n" not in body:
            raise ValueError(f"it must have the parts '{QUESTION}' and '{SOLUTION}'")
        problem, rest = body.split(f"\n{QUESTION}\n", 1)
        asked, completion = rest.split(f"\n{SOLUTION}\n", 1)
        lines = asked.split("\n")
        answer = ""
        if hint:
            m = _HINT.match(lines.pop() if lines else "")
            if not m:
                raise ValueError("its hint line '（提示：正确答案是 X）' is missing")
            answer = m.group(1)
        options: list[str] = []
        while lines and (m := _OPTION_LINE.match(lines[-1])):
            options.insert(0, m.group(2))
            lines.pop()
        if len(options) < 2 or not lines:
            raise ValueError("it needs a sub-question followed by at least two options 'A. ...', 'B. ...'")
        if not hint:
            answer = self.extract_answer(completion, direct=direct) or ""
        ex = Example(id="shot", question="\n".join(lines), answer=answer,
                     extra={"problem": problem, "options": options})
        return ex, completion

    def load_shots(self, *, direct: bool) -> ShotSet:
        shots = shots_from_files(self, direct=direct)
        if shots is not None:
            return shots
        worked = []
        for i, (problem, question, options, answer, rationale) in enumerate(BUILTIN_SHOTS):
            ex = Example(id=f"builtin-{i + 1}", question=question, answer=answer,
                         extra={"problem": problem, "options": options})
            worked.append((ex, f"答案是：{answer}" if direct else f"{rationale}\n答案是：{answer}"))
        return shots_from_examples(self, worked, direct=direct, origin="built-in logic examples")
