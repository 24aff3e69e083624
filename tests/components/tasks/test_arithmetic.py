import random

import pytest

from components.tasks.arithmetic import ArithmeticConfig, ArithmeticTask, make_example, scratchpad


def test_scratchpad_matches_the_reference_format() -> None:
    assert scratchpad(29, 57) == (
        "<scratch>\n2 9 + 5 7 , C: 0\n2 + 5 , 6 C: 1\n, 8 6 C: 0\n0 8 6\n</scratch>\n8 6"
    )


def test_gold_completion_reads_back_to_the_answer_for_every_digit_count() -> None:
    task = ArithmeticTask(ArithmeticConfig(min_digits=1, max_digits=8, train_size=400))
    for ex in task.load("train"):
        completion = task.target(ex, direct=False)
        assert task.is_correct(task.extract_answer(completion, direct=False), ex.answer), ex
        assert task.extract_answer(task.target(ex, direct=True), direct=True) == ex.answer


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<scratch>\n1 + 2 , C: 0\n, 3 C: 0\n0 3\n</scratch>\n3", "3"),
        ("<scratch>\n...\n</scratch>\n1 2 0 8", "1208"),
        ("<scratch>\n...\n</scratch>\n", None),  # nothing after </scratch>
        ("<scratch>\n...\n1 2", None),  # never closed
        ("<scratch>\n...\n</scratch>\n1 2 x", None),  # not a number
        ("", None),
    ],
)
def test_answer_is_the_line_after_scratch(completion: str, expected: str | None) -> None:
    assert ArithmeticTask().extract_answer(completion, direct=False) == expected


def test_hint_is_the_final_answer_only() -> None:
    task = ArithmeticTask()
    ex = make_example(29, 57, "x")
    hinted = task.question(ex, hint=True, direct=False)
    assert "Hint: 8 6" in hinted
    assert "<scratch>" not in hinted and "C:" not in hinted
    assert "Hint" not in task.question(ex, hint=False, direct=False)


def test_splits_are_seeded_disjoint_and_grouped_by_digits() -> None:
    cfg = ArithmeticConfig(min_digits=2, max_digits=4, train_size=90, eval_size=30, seed=3)
    a, b = ArithmeticTask(cfg), ArithmeticTask(cfg)
    assert a.load("train") == b.load("train")
    train, held_out = a.load("train"), a.load("eval")
    assert not {e.question for e in train} & {e.question for e in held_out}
    assert {e.group for e in held_out} == {"2", "3", "4"}
    for e in train:
        x, y = e.extra["a"], e.extra["b"]
        assert len(str(x)) == len(str(y)) == int(e.group) and int(e.answer) == x + y


def test_random_sums_are_correct() -> None:
    rng = random.Random(0)
    for _ in range(200):
        x, y = rng.randint(0, 10**9), rng.randint(0, 10**9)
        assert scratchpad(x, y).split("\n")[-1].replace(" ", "") == str(x + y)


def test_config_rejects_inverted_digit_range() -> None:
    with pytest.raises(ValueError, match="min_digits"):
        ArithmeticConfig(min_digits=5, max_digits=2)


def test_few_shot_prefix_is_worked_examples_joined_by_blank_lines() -> None:
    task = ArithmeticTask(ArithmeticConfig(few_shot_digits=[2, 3]))
    shots = task.few_shot(hint=False, direct=False)
    assert len(shots) == 2
    ex = make_example(12, 34, "q")
    prompt = task.prompt(ex, hint=False, direct=False)
    assert prompt == shots[0] + "\n\n" + shots[1] + "\n\n" + task.question(ex, hint=False, direct=False)
    for shot in shots:  # each worked example reads out to its own sum
        q, completion = shot.split("Target:\n")
        a, b = (int(x.replace(" ", "")) for x in q.split("\n")[1].split(" + "))
        assert task.extract_answer(completion, direct=False) == str(a + b)
    assert all("Hint: " in s for s in task.few_shot(hint=True, direct=False))
    assert ArithmeticTask().prefix(hint=False, direct=False) == ""  # the demo: no prefix by default
