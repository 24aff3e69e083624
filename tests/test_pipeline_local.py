"""The real pipeline, end to end through kfp.local (SubprocessRunner), on a small problem set."""

import json
import subprocess
import sys
from pathlib import Path

import yaml
from kfp import compiler

from pipelines.config import RunConfig
from pipelines.star_pipeline import build_pipeline
from tests.conftest import small_config


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
    for step in ("generate-op", "rationalize-op", "finetune-set-op", "train-op", "evaluate-op", "report-op"):
        assert f"'{step}" in log
    artifacts = out / "artifacts"
    assert any(p.name == "attempts.jsonl" for p in artifacts.rglob("*"))


def test_compiled_pipeline_has_one_sub_dag_per_iteration(tmp_path: Path) -> None:
    cfg = RunConfig.model_validate({"iterations": 4})
    path = tmp_path / "star.yaml"
    compiler.Compiler().compile(build_pipeline(cfg), str(path))
    spec = next(yaml.safe_load_all(path.read_text()))
    components = spec["components"]
    assert {f"comp-iteration-{n}" for n in range(1, 5)} <= set(components)
    tasks = spec["root"]["dag"]["tasks"]
    assert [tasks[f"iteration-{n}"]["taskInfo"]["name"] for n in range(1, 5)] == [f"iteration {n}" for n in range(1, 5)]
    inner = components["comp-iteration-3"]["dag"]["tasks"]
    names = sorted(t["taskInfo"]["name"] for t in inner.values() if "parameterIterator" not in t)
    assert names == ["iteration 3 · build fine-tuning set", "iteration 3 · evaluate", "iteration 3 · report",
                     "iteration 3 · train"]
    # iteration n+1 generates with iteration n's model
    assert tasks["iteration-3"]["inputs"]["artifacts"]["policy"]["taskOutputArtifact"]["producerTask"] == "iteration-2"


def test_gsm8k_tiny_example_with_two_shards_runs_the_parallel_for_locally(tmp_path: Path) -> None:
    """A real-data task through kfp.local, generation fanned out over 2 shards and fanned back in."""
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "examples/gsm8k-tiny.yaml", "--out", str(out),
         "--set", "num_shards=2", "--set", "iterations=1"],
        capture_output=True, text=True, timeout=900, cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = (out / "run.log").read_text()
    assert "shard 0 of 2" in log and "shard 1 of 2" in log
    summary = json.loads((out / "summary.json").read_text())
    assert [r["iteration"] for r in summary] == [0, 1]
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert summary[1]["train_questions"] == cfg["task"]["train_size"]  # both shards' questions were merged
