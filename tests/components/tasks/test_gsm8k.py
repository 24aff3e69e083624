import json
import shutil
from pathlib import Path

import pytest

from components.core.errors import StarError
from components.tasks import GSM8KConfig, GSM8KTask, make_task
from components.tasks.gsm8k import canonical, final_answer, read_number, steps_group, to_decimal
from pipelines.task_cli import PredictionRow, score_predictions
from tests.conftest import real_data, written_and_real

TRAIN = "train_rand_split.jsonl"
UNREAD = "gsm8k.jsonl"  # the data path of a task whose rows a test never reads


def task(**kw: object) -> GSM8KTask:
    t = make_task(GSM8KConfig(path=str(kw.pop("path", UNREAD)), **kw))  # type: ignore[arg-type]
    assert isinstance(t, GSM8KTask)
    return t


@pytest.fixture
def gsm8k(data_dir: Path) -> Path:
    """The GSM8K folder (rows and few-shot files): the written one, or the real one in a `[real]` case."""
    return data_dir / "gsm8k"


def test_every_row_of_the_shared_file_loads() -> None:
    t = task(path=real_data(f"gsm8k/{TRAIN}"))
    report = t.read()
    assert (report.read, len(report.rows), report.rejected) == (7473, 7473, 0)
    examples = t.all_examples()
    assert len(examples) == 7473 and len({e.id for e in examples}) == 7473
    first = examples[0]
    assert first.question.startswith("Natalia sold clips") and first.answer == "72" and first.group == "2 steps"


def test_gold_solutions_score_100_percent_on_the_training_split() -> None:
    data = real_data(f"gsm8k/{TRAIN}")
    t = task(path=data)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    train = t.load("train")
    assert len(train) == 7473 - 200
    predictions = [(i, PredictionRow(id=e.id, output=" " + rows[int(e.id.removeprefix("row-")) - 1]["answer"]))
                   for i, e in enumerate(train, 1)]
    result = score_predictions(t, train, predictions, "gold.jsonl")
    assert result["accuracy"] == 1.0 and result["questions_scored"] == len(train) and result["unreadable"] == 0


@written_and_real
def test_the_prefix_is_the_reference_file_character_for_character(gsm8k: Path) -> None:
    t = task(path=gsm8k / TRAIN)
    assert t.prefix(hint=False, direct=False) == (gsm8k / "prompts.txt").read_text() + "\n\n"
    assert t.prefix(hint=True, direct=False) == (gsm8k / "prompts_answer_key.txt").read_text() + "\n\n"
    ex = t.all_examples()[1]
    assert t.prompt(ex, hint=False, direct=False) == (
        (gsm8k / "prompts.txt").read_text() + "\n\n" + f"Q: {ex.question}\nA:"
    )


@written_and_real
def test_each_reference_rationale_reads_out_to_its_own_answer(gsm8k: Path) -> None:
    t = task(path=gsm8k / TRAIN)
    for hint_file in ("prompts.txt", "prompts_answer_key.txt"):
        for shot in (gsm8k / hint_file).read_text().split("\n\n"):
            completion = shot.split("\nA:", 1)[1]
            gold = shot.rsplit("#### ", 1)[1]
            assert t.extract_answer(completion, direct=False) == gold
            if hint_file == "prompts_answer_key.txt":  # the hint is that same final number
                assert shot.split("\nA:", 1)[0].endswith(f" ({gold})")
    assert t.shots(direct=False).answers == ["72", "5", "42", "35", "41", "990"]


@written_and_real
def test_hint_is_the_final_number_only_never_the_solution(gsm8k: Path) -> None:
    t = task(path=gsm8k / TRAIN)
    for ex in t.load("eval")[:50]:
        hinted = t.question(ex, hint=True, direct=False)
        assert hinted == f"Q: {ex.question} ({ex.extra['final']})\nA:"
        assert "<<" not in hinted and "####" not in hinted
        assert t.question(ex, hint=False, direct=False) == f"Q: {ex.question}\nA:"


def test_direct_prompts_are_derived_from_the_rationale_examples() -> None:
    t = task(path=real_data(f"gsm8k/{TRAIN}"))
    shots = t.few_shot(hint=False, direct=True)
    assert len(shots) == 6
    assert shots[0] == ("Q: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
                        "May. How many clips did Natalia sell altogether in April and May?\nA: #### 72")
    assert t.few_shot(hint=True, direct=True)[0].endswith("in April and May? (72)\nA: #### 72")
    assert t.shots(direct=True).answers == t.shots(direct=False).answers


@written_and_real
def test_a_direct_answer_key_of_another_task_is_rejected(tmp_path: Path, gsm8k: Path) -> None:
    # The reference release's gsm8k/prompts_direct_answer_key.txt holds CommonsenseQA examples (the written
    # folder mirrors it).
    shutil.copy(gsm8k / "prompts.txt", tmp_path / "prompts.txt")
    derived = task(path=gsm8k / TRAIN).few_shot(hint=False, direct=True)
    (tmp_path / "prompts_direct.txt").write_text("\n\n".join(derived))
    foreign = (gsm8k / "prompts_direct_answer_key.txt").read_text().split("\n\n")
    (tmp_path / "prompts_direct_answer_key.txt").write_text("\n\n".join(foreign))
    with pytest.raises(StarError, match=r"prompts_direct_answer_key.txt holds 7 worked examples, .* holds 6"):
        task(prompts_dir=str(tmp_path)).few_shot(hint=True, direct=True)
    (tmp_path / "prompts_direct_answer_key.txt").write_text("\n\n".join(foreign[:6]))
    with pytest.raises(StarError, match=r"prompts_direct_answer_key.txt, example 1 is not a gsm8k worked example"):
        task(prompts_dir=str(tmp_path)).few_shot(hint=True, direct=True)


@pytest.mark.parametrize(
    "completion, expected",
    [
        (" Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "72"),
        ("#### 1,000", "1000"),
        ("#### $18.00", "18"),
        ("#### 18.0.", "18"),
        ("#### -3", "-3"),
        ("#### 0.50 dollars", "0.5"),
        ("The total is 5.\n#### <<5*2=10>>10", "10"),  # the annotation is text: removed, never evaluated
        ("#### <<__import__('os').getcwd()>>7", "7"),
        ("no final answer here: 42", None),
        ("####", None),
        ("#### many", None),
        ("first #### 4\nsecond #### 5", "4"),  # the first line with ####
    ],
)
def test_answer_is_the_number_after_hashes(completion: str, expected: str | None) -> None:
    assert task().extract_answer(completion, direct=False) == expected


@pytest.mark.parametrize("a, b", [("1000", "1,000"), ("18", "18.0"), ("0.5", ".5"), ("-0", "0"), ("5", "$5")])
def test_numbers_compare_by_value(a: str, b: str) -> None:
    t = task()
    assert t.is_correct(a, b) and t.is_correct(b, a)
    assert canonical(to_decimal(a)) == canonical(to_decimal(b))  # type: ignore[arg-type]


def test_wrong_and_missing_predictions_are_not_correct() -> None:
    t = task()
    assert not t.is_correct("17", "18") and not t.is_correct(None, "18") and not t.is_correct("x", "18")


def test_gold_parsing() -> None:
    assert final_answer("a\nb\n#### 1,080") == "1,080"
    assert read_number("$1,080.00") == "1080"
    assert steps_group("a\nb\n#### 3") == "2 steps" and steps_group("a\n#### 3") == "1 step"
    assert steps_group("\n".join("x" * 9) + "\n#### 1") == "8+ steps"
    with pytest.raises(ValueError, match="not a number"):
        final_answer("x\n#### about five")
    with pytest.raises(ValueError, match="has no final answer"):
        final_answer("just text")


def _damaged_copy(tmp_path: Path, gsm8k: Path) -> Path:
    lines = (gsm8k / TRAIN).read_text().splitlines()[:30]
    bad = json.loads(lines[4])
    bad["answer"] = bad["answer"].rsplit("####", 1)[0] + "#### about five"
    lines[4] = json.dumps(bad)
    lines[7] = json.dumps({"answer": "x\n#### 3"})
    lines[11] = lines[11][:40]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    for name in ("prompts.txt", "prompts_answer_key.txt"):
        shutil.copy(gsm8k / name, tmp_path / name)
    return path


def test_damaged_rows_are_reported_with_line_and_field_and_counted(tmp_path: Path, gsm8k: Path) -> None:
    t = task(path=_damaged_copy(tmp_path, gsm8k), eval_size=5)
    report = t.read()
    assert (report.read, len(report.rows), report.rejected) == (30, 27, 3)
    messages = [str(e) for e in report.errors]
    assert messages[0] == (f"{tmp_path / 'train.jsonl'}, line 5, field 'answer': final answer 'about five' "
                           "after '####' is not a number")
    assert messages[1].endswith("line 8, field 'question': is missing")
    assert "line 12: is not valid JSON" in messages[2]
    with pytest.raises(StarError, match=r"line 5, field 'answer'.*3 of 30 rows rejected"):
        t.load("train")


def test_skip_invalid_leaves_out_the_counted_rejects(
    tmp_path: Path, gsm8k: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = task(path=_damaged_copy(tmp_path, gsm8k), eval_size=5, skip_invalid=True)
    train, held_out = t.load("train"), t.load("eval")
    assert len(train) + len(held_out) == 27
    assert "27 valid, 3 rejected" in capsys.readouterr().err


def test_splits_are_seeded_disjoint_and_capped(gsm8k: Path) -> None:
    data = gsm8k / TRAIN
    a, b = (task(path=data, eval_size=50, train_size=100, seed=4) for _ in range(2))
    assert a.load("train") == b.load("train") and a.load("eval") == b.load("eval")
    train, held_out = a.load("train"), a.load("eval")
    assert len(train) == 100 and len(held_out) == 50
    assert not {e.id for e in train} & {e.id for e in held_out}
    assert task(path=data, eval_size=50, seed=5).load("eval") != held_out


def test_missing_prompt_files_are_a_clear_error(tmp_path: Path, gsm8k: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text((gsm8k / TRAIN).read_text().split("\n", 3)[0] + "\n")
    with pytest.raises(StarError, match=r"prompts.txt does not exist; set task.prompts_dir"):
        task(path=path).prefix(hint=False, direct=False)


def test_a_local_dataset_folder_loads_through_datasets(tmp_path: Path, gsm8k: Path) -> None:
    pytest.importorskip("datasets")
    folder = tmp_path / "gsm8k-folder"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join((gsm8k / TRAIN).read_text().splitlines()[:6]) + "\n")
    t = task(path=folder, prompts_dir=str(gsm8k), eval_size=2)
    report = t.read()
    assert report.summary() == "6 rows read, 6 valid, 0 rejected"
    assert [e.id for e in t.all_examples()] == [f"row-{i}" for i in range(1, 7)]
    assert t.all_examples()[0].answer == "72"
