"""Arbitrary text thrown at every answer read-out and every row loader: model output is only ever parsed as
text, and a bad row is a documented validation error (StarError / a counted RowError), never a crash."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.core.errors import StarError
from components.core.rows import Attempt, Example, read_rows
from components.tasks import make_task
from components.tasks.row_validation import load_rows
from pipelines.config import RunConfig

# The answer read-outs and row models never open a task's data file: the JSONL paths are placeholders.
TASKS = {
    "arithmetic": {"name": "arithmetic"},
    "gsm8k": {"name": "gsm8k", "path": "gsm8k.jsonl"},
    "commonsenseqa": {"name": "commonsenseqa", "path": "commonsenseqa.jsonl"},
    "multiple_choice": {"name": "multiple_choice",
                        "path": str(Path(__file__).parent / "data" / "science_exam.csv")},
    "logic": {"name": "logic", "path": "logic.jsonl"},
}
# text that looks like model output: digits, answer markers, letters, Chinese, control characters
PIECES = [*"0123456789 ,.-+#$()\n\t:/<>abcdeABCDE%", "</scratch>", "<scratch>", "####", "(CORRECT)", "\x00",
          "\u2028", "1,000", "18.0", "答案是：", "The answer is", "Target:\n", "\n\n"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=60).map("".join) | st.text(max_size=200)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def task_for(name: str):
    return make_task(RunConfig.model_validate({"task": TASKS[name], "model": {"base": "builtin:tiny-untrained"}}).task)


@pytest.mark.parametrize("name", list(TASKS))
@PROPERTY
@given(text=TEXT, direct=st.booleans())
def test_answer_read_out_never_crashes(name: str, text: str, direct: bool) -> None:
    task = task_for(name)
    prediction = task.extract_answer(text, direct=direct)
    assert prediction is None or isinstance(prediction, str)
    for gold in ("7", "1000", "A", "e"):
        assert isinstance(task.is_correct(prediction, gold), bool)


@pytest.mark.parametrize("name", [n for n in TASKS if n != "arithmetic"])
@PROPERTY
@given(lines=st.lists(TEXT, max_size=5))
def test_row_loaders_reject_garbage_with_counted_errors(name: str, lines: list[str], tmp_path: Path) -> None:
    task = task_for(name)
    suffix = ".csv" if name == "multiple_choice" else ".jsonl"
    path = tmp_path / f"data{suffix}"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        report = load_rows(str(path), task.row_model)
    except StarError:
        return  # a whole-file problem (e.g. a CSV without the required columns), named in one sentence
    assert report.read == len(report.rows) + len(report.errors)


@PROPERTY
@given(lines=st.lists(TEXT, min_size=1, max_size=5))
def test_step_rows_reject_garbage_with_star_error(lines: list[str], tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    for model in (Example, Attempt):
        try:
            read_rows(path, model)
        except StarError:
            pass
