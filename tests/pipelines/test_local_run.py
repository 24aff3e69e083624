"""The real pipeline, end to end through kfp.local (SubprocessRunner), on a small problem set."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from pipelines.config import RunConfig
from pipelines.package import compile_package, read_package
from pipelines.star_pipeline import build_pipeline
from tests.conftest import real_data, small_config
from tests.paths import REPO


def test_two_iterations_through_kfp_local(tmp_path: Path, star_cache: Path) -> None:
    cfg_path = tmp_path / "small.yaml"
    cfg_path.write_text(yaml.safe_dump(small_config(star_cache)))
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", str(cfg_path), "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [r["iteration"] for r in summary] == [0, 1, 2]
    for r in summary:
        assert 0.0 <= r["eval_accuracy"] <= 1.0 and r["eval_questions"] == 8
    for r in summary[1:]:
        assert r["train_questions"] == 16
        assert r["train_steps"] == (r["iteration"] + 1 if r["train_examples"] else 0)  # linear: 2 + (n-1)
    assert "<svg" in (out / "report.html").read_text()
    (out / "report.html").unlink()
    again = subprocess.run([sys.executable, "-m", "pipelines.cli", "report", str(out)], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "<polyline" in (out / "report.html").read_text() and "held-out accuracy" in again.stdout
    # every step ran as its own KFP task, with the iteration display names
    log = result.stdout + result.stderr
    for step in ("generate-op", "build-finetune-set-op", "train-op", "evaluate-op", "report-op"):
        assert f"'{step}" in log
    artifacts = out / "artifacts"
    names = {p.name for p in artifacts.rglob("*")}
    assert {"attempts.jsonl", "rationalizations.jsonl"} <= names  # one generate-and-rationalize task writes both
    # each iteration's evaluate step shows, in the UI's Metrics, what a user compares across iterations
    evaluated = [json.loads(m.read_text()) for m in artifacts.rglob("metrics") if m.parent.name.startswith("evaluate")]
    by_iteration = {int(m["iteration"]): m for m in evaluated}
    assert sorted(by_iteration) == [0, 1, 2]
    for n in (1, 2):
        assert {"eval_accuracy", "solved_by_generation", "solved_by_rationalization", "train_examples",
                "train_steps"} <= set(by_iteration[n]), by_iteration[n]
        assert by_iteration[n]["eval_accuracy"] == summary[n]["eval_accuracy"]
        assert by_iteration[n].get("train_loss") == summary[n]["train_loss"]  # logged whenever it trained


def test_an_early_stop_through_kfp_local_leaves_the_later_iterations_idle(tmp_path: Path, star_cache: Path) -> None:
    """With patience 1 and a learning rate too small to change anything, iteration 1 evaluates exactly as the
    base model did: no improvement, so the gate in front of iteration 2 stops the run. Iteration 2's steps still
    run as tasks, but load no model, and the report says where the run stopped."""
    cfg = small_config(star_cache, **{"evaluation.patience": 1, "training.learning_rate": 1e-12})
    cfg_path = tmp_path / "stop.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", str(cfg_path), "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [r["iteration"] for r in summary] == [0, 1]
    assert summary[1]["eval_accuracy"] == summary[0]["eval_accuracy"]
    assert "Stopped early after iteration 1 of 2" in (out / "report.html").read_text()
    log = (out / "run.log").read_text(encoding="utf-8")
    assert "iteration 2 skipped" in log  # the gate's answer
    assert "iteration 1 · generate" in log and "iteration 2 · generate" not in log  # no model loaded in 2
    assert "iteration 2 · train" not in log and "iteration 2 · evaluate" not in log
    skipped = [json.loads(p.read_text()) for p in (out / "artifacts").rglob("skipped.json")]
    assert skipped == [{"iteration": 2, "reason": "early stop"}]


def test_compiled_pipeline_has_one_sub_dag_per_iteration(tmp_path: Path) -> None:
    cfg = RunConfig.model_validate({"iterations": 4})
    path = tmp_path / "star.yaml"
    compile_package(build_pipeline(cfg), path)
    spec, _ = read_package(path)
    components = spec["components"]
    tasks = spec["root"]["dag"]["tasks"]
    # one sub-DAG definition, one task of it per iteration
    by_name = {t["taskInfo"]["name"]: k for k, t in tasks.items() if t["componentRef"]["name"] == "comp-star-iteration"}
    assert sorted(by_name) == [f"iteration {n}" for n in range(1, 5)]
    inner = components["comp-star-iteration"]["dag"]["tasks"]
    names = sorted(t["taskInfo"]["name"] for t in inner.values() if "parameterIterator" not in t)
    assert names == ["build fine-tuning set", "evaluate", "report", "train"]  # no patience: no gate
    # iteration n+1 generates with iteration n's model
    model = tasks[by_name["iteration 3"]]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]
    assert model == {"outputArtifactKey": "model", "producerTask": by_name["iteration 2"]}


def test_gsm8k_tiny_example_with_two_shards_runs_the_parallel_for_locally(tmp_path: Path) -> None:
    """A real-data task through kfp.local, generation fanned out over 2 shards and fanned back in."""
    data = real_data("gsm8k/train_rand_split.jsonl")  # the example names ../shared/data, the default
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "examples/gsm8k-tiny.yaml", "--out", str(out),
         "--set", "num_shards=2", "--set", "iterations=1", "--set", f"task.path={data}"],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = (out / "run.log").read_text()
    assert "shard 0 of 2" in log and "shard 1 of 2" in log
    summary = json.loads((out / "summary.json").read_text())
    assert [r["iteration"] for r in summary] == [0, 1]
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert summary[1]["train_questions"] == cfg["task"]["train_size"]  # both shards' questions were merged
