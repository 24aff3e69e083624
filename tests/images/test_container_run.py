"""`star run --runner container`: a small STaR run whose every step executes inside the runtime image, through
kfp.local's DockerRunner and podman's Docker-compatible socket."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.images.engine import REGISTRY, VERSION, podman

SMALL = {
    "name": "container-test",
    "iterations": 1,
    "task": {"name": "arithmetic", "min_digits": 1, "max_digits": 2, "train_size": 16, "eval_size": 8},
    "generation": {"batch_size": 16, "max_new_tokens": 64},
    "training": {"batch_size": 4, "schedule": {"kind": "linear", "start_steps": 2, "add_steps": 1}},
    "cluster": {"images": {"registry": REGISTRY, "tag": VERSION}},
}


def star_run(config: dict, tmp_path: Path, docker_host: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", str(cfg_path), "--out", str(out), "--runner", "container"],
        capture_output=True, text=True, timeout=1200, env={**os.environ, "DOCKER_HOST": docker_host},
    )
    return proc, out


def test_every_step_of_a_run_executes_in_the_runtime_image(podman_socket: str, runtime_image: str,
                                                          tmp_path: Path) -> None:
    since = time.time() - 1
    proc, out = star_run(SMALL, tmp_path, podman_socket)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [r["iteration"] for r in summary] == [0, 1]
    assert summary[1]["train_examples"] > 0 and summary[1]["train_steps"] == 2  # the train step trained
    assert "<svg" in (out / "report.html").read_text()
    tasks = re.findall(r"Executing task .*?'([\w-]+)'", proc.stdout + proc.stderr)
    assert {"prepare-data-op", "prepare-model-op", "generate-op", "train-op", "evaluate-op", "report-op"} <= set(tasks)
    # the engine's own record: one container started from the runtime image per task
    events = podman("events", "--stream=false", "--since", str(int(since)), "--filter", "event=start",
                    "--format", "{{.ID}} {{.Image}}")
    assert events.returncode == 0, events.stderr
    started = {line.split()[0] for line in events.stdout.splitlines() if line.split()[1:] == [runtime_image]}
    assert len(started) == len(tasks), (tasks, events.stdout)


def test_a_missing_image_is_named_before_any_step(podman_socket: str, tmp_path: Path) -> None:
    config = {**SMALL, "cluster": {"images": {"registry": "localhost/no-such-registry", "tag": VERSION}}}
    proc, out = star_run(config, tmp_path, podman_socket)
    assert proc.returncode == 2
    said = " ".join(proc.stderr.split())  # as printed, wrapped to the terminal
    assert "image localhost/no-such-registry/star-runtime:test is not on this machine" in said
    assert "build it with `make images`" in said
    assert not (out / "artifacts").exists() or not any((out / "artifacts").rglob("*.jsonl"))
