"""`star run --resume DIR`: a local run killed in the middle of generation or of training continues without
redoing finished steps and ends with the summary.json of a run that was never interrupted."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import small_config
from tests.paths import REPO

ROOT = REPO


def _config(tmp: Path, cache: Path) -> Path:
    cfg = small_config(cache, iterations=1)
    cfg["model"] = {"cache_dir": str(cache)}  # the shipped demo base model: right often on 1-2 digit sums
    cfg["task"].update(train_size=48, eval_size=8)
    cfg["training"] = {"method": "lora", "learning_rate": 1e-3, "batch_size": 4, "checkpoint_every": 4,
                       "schedule": {"kind": "linear", "start_steps": 40, "add_steps": 0}}
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _star(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "run", *args]


def _wait_gone(pgid: int, timeout: float = 120) -> None:
    """Until every process of the run (the CLI and the step it was running) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pgid, signal.SIGKILL)
    raise AssertionError("the interrupted run did not exit")


def _interrupt(cfg: Path, out: Path, ready: Callable[[], bool], sig: signal.Signals) -> None:
    proc = subprocess.Popen(_star(str(cfg), "--out", str(out)), cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not ready():
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, sig)
    proc.wait(timeout=60)
    _wait_gone(proc.pid)
    assert not (out / "summary.json").exists()


def _resume(out: Path) -> str:
    result = subprocess.run(_star("--resume", str(out)), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, star_cache: Path) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("whole")
    cfg = _config(tmp, star_cache)
    out = tmp / "run"
    result = subprocess.run(_star(str(cfg), "--out", str(out)), cwd=ROOT, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary[1]["train_steps"] == 40 and summary[1]["train_examples"] > 0
    return cfg, summary


def test_killed_in_the_middle_of_training_resumes_from_its_checkpoint(
    uninterrupted: tuple[Path, dict], tmp_path: Path
) -> None:
    cfg, expected = uninterrupted
    out = tmp_path / "run"

    def checkpointed() -> bool:
        return any((out / "checkpoints").glob("*/*/checkpoint-*/MANIFEST.json"))

    _interrupt(cfg, out, checkpointed, signal.SIGTERM)  # what Kubernetes sends a pod it is about to stop
    saved = sorted(int(p.parent.name.split("-")[1]) for p in (out / "checkpoints").glob("*/*/checkpoint-*/MANI*"))
    assert len(saved) == 1 and 0 < saved[0] < 40
    log = _resume(out)
    assert f"continuing from checkpoint-{saved[0]}" in log
    assert "Task generate-op cache hit" in log and "Task train-op cache hit" not in log
    assert json.loads((out / "summary.json").read_text()) == expected


def test_killed_in_the_middle_of_generation_resumes_to_the_same_summary(
    uninterrupted: tuple[Path, dict], tmp_path: Path
) -> None:
    cfg, expected = uninterrupted
    out = tmp_path / "run"

    def generating() -> bool:
        log = out / "run.log"
        return log.exists() and "iteration 1 · generate ▕" in log.read_text(encoding="utf-8", errors="replace")

    _interrupt(cfg, out, generating, signal.SIGKILL)
    log = _resume(out)
    assert "Task evaluate-op cache hit" in log  # iteration 0's evaluation was not redone
    assert json.loads((out / "summary.json").read_text()) == expected


def test_resume_needs_a_run_folder(tmp_path: Path) -> None:
    result = subprocess.run(_star("--resume", str(tmp_path)), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"{tmp_path} holds no run to resume" in " ".join((result.stderr + result.stdout).split())
