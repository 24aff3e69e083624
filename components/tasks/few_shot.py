"""Few-shot prompt files: blank-line separated worked examples (`prompts.txt`, `prompts_answer_key.txt`, and the
direct-answer pair), each checked to be written in its task's prompt format and to read out to its own answer.
Without a hint file, the hint examples are derived from the plain ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from components.core.errors import StarError
from components.core.rows import Example
from components.tasks.base import Task


class ShotFiles(NamedTuple):
    plain: str
    hint: str


RATIONALE_FILES = ShotFiles("prompts.txt", "prompts_answer_key.txt")
DIRECT_FILES = ShotFiles("prompts_direct.txt", "prompts_direct_answer_key.txt")


def files_for(direct: bool) -> ShotFiles:
    return DIRECT_FILES if direct else RATIONALE_FILES


@dataclass(frozen=True)
class ShotSet:
    """The worked examples of one mode, without and with the hint, and where they came from."""

    plain: list[str]
    hint: list[str]
    origin: str
    answers: list[str]


class ShotFileTask(Protocol):
    """What reading and checking few-shot files needs of a task (`DataTask` has it all)."""

    name: str

    def prompt_file(self, name: str) -> tuple[str, str | None]: ...
    def parse_shot(self, text: str, *, hint: bool, direct: bool) -> tuple[Example, str]: ...
    def question(self, example: Example, *, hint: bool, direct: bool) -> str: ...
    def extract_answer(self, completion: str, *, direct: bool) -> str | None: ...
    def is_correct(self, prediction: str | None, gold: str) -> bool: ...


def split_shots(text: str) -> list[str]:
    """Blank-line separated worked examples, exactly as the reference reads them (`text.split("\\n\\n")`);
    Windows line ends and the newline an editor adds at the end of a file are not part of the last example."""
    text = text.replace("\r\n", "\n").removesuffix("\n")
    return text.split("\n\n")


def check_shot(task: ShotFileTask, text: str, *, hint: bool, direct: bool, where: str) -> tuple[Example, str, str]:
    """Parse a worked example, check that the task writes its question part character for character, and that
    its rationale reads out to an answer (with a hint: to the hinted answer). Returns (example, completion,
    answer)."""
    try:
        ex, completion = task.parse_shot(text, hint=hint, direct=direct)
    except ValueError as e:
        raise StarError(f"{where} is not a {task.name} worked example: {e}.") from e
    rendered = task.question(ex, hint=hint, direct=direct) + completion
    if rendered != text:
        same = (i for i, (a, b) in enumerate(zip(rendered, text, strict=False)) if a != b)
        at = next(same, min(len(rendered), len(text)))
        raise StarError(
            f"{where} differs from the {task.name} prompt format at character {at} "
            f"(the file has {text[at:at + 30]!r}, the task writes {rendered[at:at + 30]!r})."
        )
    answer = task.extract_answer(completion, direct=direct)
    if answer is None:
        raise StarError(f"{where}: its rationale has no final answer the {task.name} read-out finds.")
    if hint and not task.is_correct(answer, ex.answer):
        raise StarError(f"{where}: its rationale reads out to {answer!r}, but its hint gives {ex.answer!r}.")
    return ex, completion, answer


def shots_from_files(task: ShotFileTask, *, direct: bool) -> ShotSet | None:
    """The worked examples of a mode from the prompt files, each checked; None when the plain file is absent.
    Without a hint file, the hint examples are derived from the plain ones (the hint marks their answer)."""
    files = files_for(direct)
    plain_loc, plain_text = task.prompt_file(files.plain)
    if plain_text is None:
        return None
    plain = split_shots(plain_text)
    parsed = [check_shot(task, t, hint=False, direct=direct, where=f"{plain_loc}, example {i + 1}")
              for i, t in enumerate(plain)]
    hint_loc, hint_text = task.prompt_file(files.hint)
    if hint_text is None:
        hints = []
        for ex, completion, answer in parsed:
            hinted = ex.model_copy(update={"answer": answer})
            hints.append(task.question(hinted, hint=True, direct=direct) + completion)
        return ShotSet(plain, hints, f"{plain_loc} (hint examples derived from it)", [a for _, _, a in parsed])
    hints = split_shots(hint_text)
    if len(hints) != len(plain):
        raise StarError(f"{hint_loc} holds {len(hints)} worked examples, {plain_loc} holds {len(plain)}; "
                        "they must be the same examples.")
    answers = []
    for i, (t, (ex, _, answer)) in enumerate(zip(hints, parsed, strict=True)):
        where = f"{hint_loc}, example {i + 1}"
        hex_, _, hanswer = check_shot(task, t, hint=True, direct=direct, where=where)
        if hex_.question != ex.question:
            raise StarError(f"{where} asks a different question than example {i + 1} of {plain_loc}.")
        if not task.is_correct(answer, hex_.answer):
            raise StarError(f"{plain_loc}, example {i + 1}: its rationale reads out to {answer!r}, but the "
                            f"hint of the same example in {hint_loc} gives {hex_.answer!r}.")
        answers.append(hanswer)
    return ShotSet(plain, hints, f"{plain_loc} and {hint_loc}", answers)


def shots_from_examples(
    task: Task, worked: list[tuple[Example, str]], *, direct: bool, origin: str
) -> ShotSet:
    """Worked examples given as (example, completion), written in the task's prompt format."""
    plain = [task.question(ex, hint=False, direct=direct) + c for ex, c in worked]
    hints = [task.question(ex, hint=True, direct=direct) + c for ex, c in worked]
    return ShotSet(plain, hints, origin, [ex.answer for ex, _ in worked])
