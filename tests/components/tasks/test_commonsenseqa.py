import json
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from components.core.errors import StarError
from components.tasks import CommonsenseQAConfig, CommonsenseQATask, make_task
from components.tasks.commonsenseqa import CQARow, read_letter
from components.tasks.row_validation import load_rows
from tests.conftest import real_data, written_and_real

TRAIN = "train_rand_split.jsonl"
UNREAD = "commonsenseqa.jsonl"  # the data path of a task whose rows a test never reads
FILES = {  # (hint, direct) -> reference file
    (False, False): "prompts.txt",
    (True, False): "prompts_answer_key.txt",
    (False, True): "prompts_direct.txt",
    (True, True): "prompts_direct_answer_key.txt",
}


def task(**kw: object) -> CommonsenseQATask:
    t = make_task(CommonsenseQAConfig(path=str(kw.pop("path", UNREAD)), **kw))  # type: ignore[arg-type]
    assert isinstance(t, CommonsenseQATask)
    return t


@pytest.fixture
def cqa(data_dir: Path) -> Path:
    """The CommonsenseQA folder (rows and few-shot files): the written one, or the real one in a `[real]`
    case."""
    return data_dir / "commonsenseqa"


def reference_context(row: dict[str, Any], hint: bool) -> str:
    """`question_to_context` of the STaR reference code (seed 000), dataset_mode 'cqa'."""
    context = f"Q: {row['question']['stem']}\nAnswer Choices:\n"
    for choice in row["question"]["choices"]:
        if hint and (choice["label"].lower() == row["answerKey"].lower()):
            context += f"({choice['label'].lower()}) {choice['text']} (CORRECT)\n"
        else:
            context += f"({choice['label'].lower()}) {choice['text']}\n"
    context += "A:"
    return context


def test_every_row_of_the_shared_file_loads() -> None:
    t = task(path=real_data(f"commonsenseqa/{TRAIN}"))
    report = t.read()
    assert (report.read, len(report.rows), report.rejected) == (9741, 9741, 0)
    examples = t.all_examples()
    assert len(examples) == 9741 and len({e.id for e in examples}) == 9741
    assert {e.answer for e in examples} == set("ABCDE")


@written_and_real
@pytest.mark.parametrize("hint, direct", list(FILES))
def test_the_prefix_is_the_reference_file_character_for_character(hint: bool, direct: bool, cqa: Path) -> None:
    t = task(path=cqa / TRAIN)
    assert t.prefix(hint=hint, direct=direct) == (cqa / FILES[hint, direct]).read_text() + "\n\n"


@written_and_real
def test_the_question_part_is_the_reference_format(cqa: Path) -> None:
    t = task(path=cqa / TRAIN)
    rows = [json.loads(line) for line in (cqa / TRAIN).read_text().splitlines()[:200]]
    for row, ex in zip(rows, t.all_examples()[:200], strict=True):
        for hint in (False, True):
            assert t.question(ex, hint=hint, direct=False) == reference_context(row, hint)
            assert t.question(ex, hint=hint, direct=True) == reference_context(row, hint)


@written_and_real
def test_the_hint_marks_exactly_the_correct_choice(cqa: Path) -> None:
    t = task(path=cqa / TRAIN)
    ex = t.all_examples()[0]
    hinted = t.question(ex, hint=True, direct=False)
    assert hinted.count("(CORRECT)") == 1
    assert f"({ex.answer.lower()}) " in hinted.split("(CORRECT)")[0].rsplit("\n", 1)[1]
    assert "(CORRECT)" not in t.question(ex, hint=False, direct=False)


@written_and_real
@pytest.mark.parametrize("hint, direct", list(FILES))
def test_each_reference_rationale_reads_out_to_its_own_answer(hint: bool, direct: bool, cqa: Path) -> None:
    t = task(path=cqa / TRAIN)
    marked = []
    for shot in (cqa / FILES[True, direct]).read_text().split("\n\n"):
        line = next(ln for ln in shot.split("\n") if ln.endswith(" (CORRECT)"))
        marked.append(line[1].upper())
    for shot, gold in zip((cqa / FILES[hint, direct]).read_text().split("\n\n"), marked, strict=True):
        completion = shot.split("\nA:", 1)[1]
        assert t.extract_answer(completion, direct=direct) == gold
    assert t.shots(direct=direct).answers == marked == ["E", "C", "C", "A", "B", "D", "C"]


@pytest.mark.parametrize(
    "completion, expected",
    [
        (" The answer must be used to absorb extra ink. Therefore, the answer is blotter (e).", "E"),
        (" (c).", "C"),
        (" Therefore, the answer is atlas (D).", "D"),
        (" the answer is atlas (d)\nmore text (a).", "D"),  # the first line counts
        ("\n The answer is television (c).", "C"),  # a leading line break is skipped
        (" The answer is (f).", None),
        (" I do not know.", None),
        ("", None),
    ],
)
def test_answer_is_the_letter_at_the_end_of_the_first_line(completion: str, expected: str | None) -> None:
    assert read_letter(completion) == expected


def _damaged_copy(tmp_path: Path, cqa: Path) -> Path:
    lines = (cqa / TRAIN).read_text().splitlines()[:40]
    r = json.loads(lines[2])
    del r["answerKey"]
    lines[2] = json.dumps(r)
    r = json.loads(lines[5])
    r["question"]["choices"][3]["label"] = "F"
    lines[5] = json.dumps(r)
    lines[9] = lines[9][:60]
    r = json.loads(lines[20])
    r["question"]["choices"] = r["question"]["choices"][:4]
    lines[20] = json.dumps(r)
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    for name in FILES.values():
        shutil.copy(cqa / name, tmp_path / name)
    return path


def test_damaged_rows_are_reported_with_line_and_field_and_counted(tmp_path: Path, cqa: Path) -> None:
    path = _damaged_copy(tmp_path, cqa)
    report = task(path=path, eval_size=4).read()
    assert (report.read, len(report.rows), report.rejected) == (40, 36, 4)
    assert [str(e) for e in report.errors] == [
        f"{path}, line 3, field 'answerKey': is missing",
        f"{path}, line 6, field 'question.choices.3.label': 'F' is not a choice label A-E",
        f"{path}, line 10: is not valid JSON (Expecting property name enclosed in double quotes at column 61)",
        f"{path}, line 21, field 'question.choices': must be five choices labelled A, B, C, D, E in order (got ABCD)",
    ]
    assert report.errors[2].line == 10 and report.errors[2].field is None
    with pytest.raises(StarError, match=r"line 3, field 'answerKey'.*4 of 40 rows rejected"):
        task(path=path, eval_size=4).load("eval")


def test_hub_layout_rows_validate() -> None:
    row = CQARow.model_validate({
        "id": "x1", "question": "Where do you put grapes?", "question_concept": "grapes", "answerKey": "b",
        "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["mouth", "cart", "sky", "box", "field"]},
    })
    assert row.answerKey == "B" and row.question.stem == "Where do you put grapes?"
    assert [c.text for c in row.question.choices][1] == "cart"


def test_a_hugging_face_dataset_id_loads_through_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    rows = [
        {"id": "a", "question": "Q1?", "question_concept": "c", "answerKey": "A",
         "choices": {"label": list("ABCDE"), "text": ["1", "2", "3", "4", "5"]}},
        {"id": "b", "question": "Q2?", "question_concept": "c", "answerKey": "",  # the hub's unlabelled test rows
         "choices": {"label": list("ABCDE"), "text": ["1", "2", "3", "4", "5"]}},
    ]

    def load_dataset(name: str, config: str | None, split: str) -> list[dict]:
        calls.append((name, config, split))
        return rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    report = load_rows("tau/commonsense_qa@validation", CQARow)
    assert calls == [("tau/commonsense_qa", None, "validation")]
    assert len(report.rows) == 1 and report.rows[0][1].id == "a"
    assert str(report.errors[0]) == ("tau/commonsense_qa@validation, row 2, field 'answerKey': is empty "
                                     "(an unlabelled row cannot be scored)")


def test_a_dataset_id_without_datasets_installed_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(StarError, match=r"read as a Hugging Face dataset ID.*pip install datasets=="):
        load_rows("tau/commonsense_qa", CQARow)


def test_missing_prompt_files_are_a_clear_error(tmp_path: Path, cqa: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text((cqa / TRAIN).read_text().split("\n", 3)[0] + "\n")
    with pytest.raises(StarError, match=r"prompts_direct.txt does not exist; set task.prompts_dir"):
        task(path=path).prefix(hint=False, direct=True)
    assert task(path=path, prompts_dir=str(cqa)).prefix(hint=False, direct=True).startswith("Q: What do people")


def test_a_prompt_file_out_of_format_is_named_with_its_example(tmp_path: Path, cqa: Path) -> None:
    shots = (cqa / "prompts.txt").read_text().split("\n\n")
    shots[2] = shots[2].replace("Answer Choices:", "Choices:")
    (tmp_path / "prompts.txt").write_text("\n\n".join(shots))
    shutil.copy(cqa / "prompts_answer_key.txt", tmp_path / "prompts_answer_key.txt")
    with pytest.raises(StarError, match=r"prompts.txt, example 3 is not a commonsenseqa worked example"):
        task(prompts_dir=str(tmp_path)).few_shot(hint=False, direct=False)
    shots = (cqa / "prompts.txt").read_text().split("\n\n")
    shots[0] = shots[0].replace("blotter (e).", "blotter (a).")
    (tmp_path / "prompts.txt").write_text("\n\n".join(shots))
    with pytest.raises(StarError, match=r"prompts.txt, example 1: its rationale reads out to 'A', but the hint"):
        task(prompts_dir=str(tmp_path)).few_shot(hint=False, direct=False)
