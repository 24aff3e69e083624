"""A run too long for one Workflow is a chain of runs: each publishes its iterations, the next starts after the
last published one (and a failed run resumes the same way)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.core.artifact_files import HISTORY
from components.core.errors import StarError
from components.core.rows import IterationRecord, read_rows, write_rows
from components.published import fetch_iteration, publish_iteration, published_iterations
from pipelines.config import continue_from, load_config


def _iteration(tmp_path: Path, n: int) -> tuple[Path, Path]:
    model, history = tmp_path / f"model{n}", tmp_path / f"history{n}"
    model.mkdir()
    (model / "adapter_config.json").write_text(json.dumps({"iteration": n}))
    write_rows(history / HISTORY, [IterationRecord(iteration=i, eval_accuracy=i / 10, eval_questions=1)
                                   for i in range(n + 1)])
    return model, history


def test_published_iterations_round_trip_and_a_later_run_continues_after_the_last(tmp_path):
    url = str(tmp_path / "published")
    for n in (1, 2):
        publish_iteration(url, n, *_iteration(tmp_path, n))
    (tmp_path / "published" / "iteration-3").mkdir()  # an unfinished copy (no manifest) does not count
    assert published_iterations(url) == [1, 2]
    config = continue_from(load_config(None, ["iterations=5", "evaluation.baselines=false"]), url)
    assert (config.start.iteration, config.start.from_url, config.publish) == (3, url, url)
    model, history = tmp_path / "got-model", tmp_path / "got-history"
    fetch_iteration(url, 2, model, history)
    assert json.loads((model / "adapter_config.json").read_text()) == {"iteration": 2}
    assert [r.iteration for r in read_rows(history / HISTORY, IterationRecord)] == [0, 1, 2]


def test_continuing_needs_a_published_iteration_before_the_start(tmp_path):
    url = str(tmp_path / "published")
    publish_iteration(url, 1, *_iteration(tmp_path, 1))
    base = load_config(None, ["iterations=5", "evaluation.baselines=false"])
    with pytest.raises(StarError, match="no complete iteration 3"):
        continue_from(base, url, 4)
    with pytest.raises(StarError, match="holds no published iteration"):
        continue_from(base, str(tmp_path / "empty"))
    with pytest.raises(StarError, match="raise iterations"):
        continue_from(load_config(None, ["iterations=1", "evaluation.baselines=false"]), url)
    with pytest.raises(StarError, match="no complete iteration 2 to start iteration 3 from"):
        fetch_iteration(url, 2, tmp_path / "m", tmp_path / "h")


def test_a_start_after_iteration_one_needs_the_earlier_run():
    with pytest.raises(StarError, match="start.from_url"):
        load_config(None, ["iterations=3", "evaluation.baselines=false", "start.iteration=2"])
    with pytest.raises(StarError, match="publish to null"):
        load_config(None, ["publish=/tmp/x"])  # the demo runs baselines: one run, three arms


@pytest.mark.slow
def test_a_second_run_goes_on_from_the_first_runs_published_iteration(tmp_path):
    """Run 1 trains iteration 1 and publishes it; run 2 starts at iteration 2 from it, through kfp.local."""
    from pipelines.local_run import run_local

    published = str(tmp_path / "published")
    small = ["evaluation.baselines=false", "task.train_size=8", "task.eval_size=4", "task.max_digits=2",
             "training.schedule.start_steps=2", "training.method=lora", "generation.max_new_tokens=48",
             f"publish={published}"]
    first = run_local(load_config(None, [*small, "iterations=1"]), tmp_path / "run1")
    assert [r["iteration"] for r in json.loads((first / "summary.json").read_text())] == [0, 1]
    assert published_iterations(published) == [1]
    second = continue_from(load_config(None, [*small, "iterations=2"]), published)
    out = run_local(second, tmp_path / "run2")
    rows = json.loads((out / "summary.json").read_text())
    assert [r["iteration"] for r in rows] == [0, 1, 2]  # the history goes on from run 1's
    assert rows[:2] == json.loads((first / "summary.json").read_text())
    assert published_iterations(published) == [1, 2]


def test_the_command_line_refuses_a_start_iteration_without_the_run_to_continue(tmp_path):
    import subprocess

    from tests.paths import REPO

    done = subprocess.run(["star", "run", "--out", str(tmp_path / "r"), "--start-iteration", "2"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode != 0
    assert "--start-iteration needs --from" in done.stderr and "Traceback" not in done.stderr
