import json
from pathlib import Path

from components.core.artifact_files import HISTORY, SUMMARY
from components.core.rows import Attempt, IterationRecord, write_rows
from components.report import report, stop_note
from pipelines.config import RunConfig


def test_report_writes_summary_and_a_page_with_curve_and_escaped_samples(tmp_path: Path) -> None:
    sample = Attempt(id="e1", group="3", source="generation", prompt="Input:\n1 2 3 + 4 5 6\nTarget:\n",
                     completion="<scratch>\n</scratch>\n5 7 9", prediction="579", correct=True)
    history = [
        IterationRecord(iteration=0, eval_accuracy=0.25, eval_accuracy_by_group={"1": 0.5, "3": 0.0},
                        eval_questions=8, samples=[sample]),
        IterationRecord(iteration=1, eval_accuracy=0.5, eval_accuracy_by_group={"1": 0.75, "3": 0.25},
                        eval_questions=8, train_questions=10, solved_by_generation=4, solved_by_rationalization=2,
                        train_examples=6, train_steps=40, train_loss=0.5, samples=[sample]),
    ]
    write_rows(tmp_path / "h" / HISTORY, history)
    rows = report(RunConfig().report_settings(), str(tmp_path / "h"), str(tmp_path / "s"), str(tmp_path / "r.html"))
    summary = json.loads((tmp_path / "s" / SUMMARY).read_text())
    assert summary == rows
    assert [r["iteration"] for r in summary] == [0, 1]
    for key in ("eval_accuracy", "train_questions", "solved_by_generation", "solved_by_rationalization",
                "train_examples", "train_steps", "train_loss"):
        assert key in summary[1]
    assert summary[1]["solved_by_rationalization"] == 2 and summary[1]["train_loss"] == 0.5
    page = (tmp_path / "r.html").read_text()
    assert page.count("<polyline") == 3  # overall + one line per digit count
    assert "&lt;scratch&gt;" in page and "<scratch>" not in page  # model output is escaped, never markup
    assert "40.0% + 20.0%" in page  # solved by generation + by rationalization
    assert "Stopped early" not in page


def test_a_run_that_stopped_early_says_after_which_iteration(tmp_path: Path) -> None:
    # an early stop leaves the later iterations' steps inactive: the history ends at the last iteration that ran
    history = [IterationRecord(iteration=n, eval_accuracy=a, eval_questions=8)
               for n, a in enumerate([0.2, 0.5, 0.4, 0.45])]
    write_rows(tmp_path / "h" / HISTORY, history)
    settings = RunConfig.model_validate({"iterations": 6, "evaluation": {"patience": 2}}).report_settings()
    assert stop_note(settings, history) == ("Stopped early after iteration 3 of 6: held-out accuracy had not "
                                            "improved for 2 iterations.")
    rows = report(settings, str(tmp_path / "h"), str(tmp_path / "s"), str(tmp_path / "r.html"))
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    assert "Stopped early after iteration 3 of 6" in (tmp_path / "r.html").read_text()
    # the same history in a run of 3 iterations ended because it was done, not stopped
    done = RunConfig.model_validate({"iterations": 3, "evaluation": {"patience": 2}}).report_settings()
    assert stop_note(done, history) == ""
    assert stop_note(RunConfig().report_settings(), history) == ""  # no patience: never stopped
