import json
from pathlib import Path

import pytest

from components.core.errors import StarError
from components.tasks import LogicConfig, LogicTask, make_task
from components.tasks.logic import INSTRUCTION, LogicRow
from components.tasks.row_validation import load_rows
from tests.conftest import real_data, written_and_real

TRAIN = "round1_train_data.jsonl"
UNREAD = "logic.jsonl"  # the data path of a task whose rows a test never reads


def task(**kw: object) -> LogicTask:
    t = make_task(LogicConfig(path=str(kw.pop("path", UNREAD)), **kw))  # type: ignore[arg-type]
    assert isinstance(t, LogicTask)
    return t


@pytest.fixture
def logic(data_dir: Path) -> Path:
    """The logic-reasoning folder (no prompts.txt): the written one, or the real one in a `[real]` case."""
    return data_dir / "logic_reasoning"


def test_every_problem_and_sub_question_of_the_shared_file_loads() -> None:
    t = task(path=real_data(f"logic_reasoning/{TRAIN}"))
    report = t.read()
    assert (report.read, len(report.rows), report.rejected) == (500, 500, 0)
    examples = t.all_examples()
    assert len(examples) == 1421 and len({e.id for e in examples}) == 1421
    assert [e.id for e in examples[:4]] == [f"round1_train_data_000-{k}" for k in (1, 2, 3)] + [
        "round1_train_data_001-1"]
    assert {e.group for e in examples} == {"2 options", "3 options", "4 options", "5 options"}


def test_one_example_per_sub_question_with_lettered_options_and_the_closed_world_instruction() -> None:
    t = task(path=real_data(f"logic_reasoning/{TRAIN}"))
    ex = t.all_examples()[1]  # round1_train_data_000, sub-question 2
    assert ex.answer == "A"
    q = t.question(ex, hint=False, direct=False)
    assert q.startswith(INSTRUCTION) and "闭世界假设" in q and '最后一行的格式为"答案是：A"' in q
    assert "### 题目：\n有一个英文到法文的词汇表，包含以下对应词汇：\n1. the -> le\n" in q  # blank lines folded
    assert q.endswith("### 问题：\n选择题 2：\n英文句子 \"the cow plays the fiddle\" 翻译成法文是：\n"
                      "A. le vache jouer le violon\nB. le jouer vache le violon\nC. le vache jouer la vièle\n"
                      "D. la vache joue le violon\n### 解答：\n")
    assert "\n\n" not in q
    # the instruction stays when the few-shot prefix is dropped (no_prompt)
    assert t.prompt(ex, hint=False, direct=False, use_few_shot=False) == q


def test_one_example_per_sub_question_of_a_written_problem(logic: Path) -> None:
    """The checks above on a written problem (the one above is of the real data set)."""
    t = task(path=logic / TRAIN)
    ex = t.all_examples()[1]  # logic_000, sub-question 2
    assert ex.id == "logic_000-2" and ex.answer == "A" and ex.group == "2 options"
    q = t.question(ex, hint=False, direct=False)
    assert q.startswith(INSTRUCTION) and "闭世界假设" in q and '最后一行的格式为"答案是：A"' in q
    assert "### 题目：\n一个数列的第一项是 2，之后的每一项都比前一项大 3。\n根据上述规则" in q  # blank line folded
    assert q.endswith("### 问题：\n选择题 2：\n这个数列的第 4 项是否为 11？\nA. 是\nB. 否\n### 解答：\n")
    assert "\n\n" not in q
    assert t.prompt(ex, hint=False, direct=False, use_few_shot=False) == q


@written_and_real
def test_the_hint_is_the_answer_letter_only(logic: Path) -> None:
    t = task(path=logic / TRAIN)
    ex = t.all_examples()[0]
    hinted = t.question(ex, hint=True, direct=False)
    assert hinted.endswith(f"（提示：正确答案是 {ex.answer}）\n### 解答：\n")
    assert hinted.replace(f"（提示：正确答案是 {ex.answer}）\n", "") == t.question(ex, hint=False, direct=False)


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("先分析。\n所以选 C。\n答案是：C", "C"),
        ("分析\n答案是:b", "B"),
        ("分析\n答案是： **D**", "D"),
        ("分析\n答案是：C\n", "C"),
        ("答案是：C\n但我再想想", None),  # not on the last line
        ("分析完毕，没有结论", None),
        ("", None),
    ],
)
def test_answer_is_read_from_the_last_line(completion: str, expected: str | None) -> None:
    assert task().extract_answer(completion, direct=False) == expected


def test_built_in_worked_examples_read_out_to_their_own_answers(logic: Path) -> None:
    t = task(path=logic / TRAIN)
    for direct in (False, True):
        shots = t.shots(direct=direct)
        assert shots.answers == ["B", "A", "C"]
        for plain, hinted, answer in zip(shots.plain, shots.hint, shots.answers, strict=True):
            completion = plain.split("### 解答：\n", 1)[1]
            assert t.extract_answer(completion, direct=direct) == answer
            assert completion.endswith(f"答案是：{answer}") and "\n\n" not in plain
            assert f"（提示：正确答案是 {answer}）" in hinted
    assert t.few_shot(hint=False, direct=True)[0].endswith("### 解答：\n答案是：B")


def test_prompt_files_round_trip(tmp_path: Path, logic: Path) -> None:
    built_in = task(path=logic / TRAIN)
    (tmp_path / "prompts.txt").write_text("\n\n".join(built_in.few_shot(hint=False, direct=False)))
    (tmp_path / "prompts_answer_key.txt").write_text("\n\n".join(built_in.few_shot(hint=True, direct=False)))
    t = task(prompts_dir=str(tmp_path))
    assert t.prefix(hint=True, direct=False) == built_in.prefix(hint=True, direct=False)
    assert t.shots(direct=False).origin.endswith("prompts_answer_key.txt")
    broken = built_in.few_shot(hint=False, direct=False)
    broken[1] = broken[1].removesuffix("答案是：A") + "答案是：D"
    (tmp_path / "prompts.txt").write_text("\n\n".join(broken))
    with pytest.raises(StarError, match=r"prompts.txt, example 2: its rationale reads out to 'D'"):
        task(prompts_dir=str(tmp_path)).few_shot(hint=False, direct=False)


def test_splits_keep_the_sub_questions_of_a_problem_together(logic: Path) -> None:
    t = task(path=logic / TRAIN, eval_size=50, train_size=120, seed=1)
    train, held_out = t.load("train"), t.load("eval")
    problems = lambda xs: {e.id.rsplit("-", 1)[0] for e in xs}  # noqa: E731
    assert len(problems(train)) == 120 and len(problems(held_out)) == 50
    assert not problems(train) & problems(held_out)
    assert t.load("eval") == task(path=logic / TRAIN, eval_size=50, train_size=120, seed=1).load("eval")


def test_damaged_problems_are_reported_with_line_and_field(tmp_path: Path, logic: Path) -> None:
    lines = (logic / TRAIN).read_text().splitlines()[:10]
    r = json.loads(lines[1])
    r["questions"][1]["answer"] = "E"  # two options only
    lines[1] = json.dumps(r, ensure_ascii=False)
    r = json.loads(lines[3])
    r["questions"][0]["options"] = ["1", "2", "3", "4", "5", "6"]
    lines[3] = json.dumps(r, ensure_ascii=False)
    r = json.loads(lines[6])
    del r["problem"]
    lines[6] = json.dumps(r, ensure_ascii=False)
    lines[8] = "{\"id\": 'x'}"
    path = tmp_path / "logic.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = load_rows(str(path), LogicRow)
    assert (report.read, len(report.rows), report.rejected) == (10, 6, 4)
    assert [(e.line, e.field) for e in report.errors] == [
        (2, "questions.1"), (4, "questions.0.options"), (7, "problem"), (9, None)]
    assert report.errors[0].message == "answer 'E' is not one of the 2 options A-B"
    assert report.errors[1].message.startswith("List should have at most 5 items")
    with pytest.raises(StarError, match=r"logic.jsonl, line 2, field 'questions.1'"):
        task(path=path, eval_size=2).load("train")
