"""A local run whose base model and training checkpoints live in a bucket (a real S3 protocol server on
loopback, behind a proxy that injects 503s and resets), and the credentials it used appear nowhere: not in the
compiled pipeline, not in an artifact, not in a log line."""

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml

from components import storage
from components.demo.builtin import ASSETS
from components.storage import StorageConfig
from tests.conftest import small_config
from tests.fakes.s3_server import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, FaultPlan, FaultProxy
from tests.paths import REPO

ROOT = REPO
SECRETS = (DUMMY_SECRET_ACCESS_KEY.encode(), DUMMY_ACCESS_KEY_ID.encode())


def _star(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _leaks(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and any(s in p.read_bytes() for s in SECRETS)]


def test_local_run_with_model_and_checkpoints_in_a_bucket_leaks_no_credential(
    s3_bucket: str, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, star_cache: Path
) -> None:
    monkeypatch.setenv("STAR_CACHE", str(tmp_path / "cache"))
    with FaultProxy(s3_endpoint, FaultPlan.every(5, "503", "reset", max_faults=30)) as proxy:
        model_url = f"s3://{s3_bucket}/models/tiny-arithmetic"
        put = _star("storage", "put", str(ASSETS), model_url, "--endpoint-url", proxy.url, "--path-style")
        assert put.returncode == 0, put.stdout + put.stderr
        cfg = small_config(star_cache, iterations=1)
        cfg["model"] = {"base": model_url}
        cfg["task"].update(train_size=24, eval_size=8)
        cfg["training"] = {"method": "lora", "learning_rate": 1e-3, "batch_size": 4, "checkpoint_every": 3,
                           "checkpoints": f"s3://{s3_bucket}/checkpoints",
                           "schedule": {"kind": "linear", "start_steps": 7, "add_steps": 0}}
        cfg["storage"] = {"endpoint_url": proxy.url, "path_style": True, "backoff_seconds": 0.05}
        cfg["cluster"] = {"storage": {"secret": "star-s3"}}
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
        out = tmp_path / "run"
        run = _star("run", str(tmp_path / "run.yaml"), "--out", str(out), "--upload", f"s3://{s3_bucket}/runs/test")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        compiled = _star("compile", str(tmp_path / "run.yaml"), "-o", str(tmp_path / "star.yaml"))
        assert compiled.returncode == 0, compiled.stderr
    assert proxy.injected.total() > 0  # the run went through the faults

    summary = json.loads((out / "summary.json").read_text())
    assert summary[1]["train_steps"] == 7 and summary[1]["train_examples"] > 0
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert any(k.startswith("checkpoints/test/iteration-1-") and k.endswith("checkpoint-7/MANIFEST.json")
               for k in keys)
    assert not any("/checkpoint-3/" in k or "/checkpoint-6/" in k for k in keys)  # older ones removed
    assert (tmp_path / "cache" / "models" / "remote").is_dir()  # the base model was fetched into the cache
    uploaded = storage.read_manifest(f"s3://{s3_bucket}/runs/test", StorageConfig(endpoint_url=s3_endpoint))
    assert uploaded is not None and {"summary.json", "report.html", "run.log", "config.yaml"} <= set(uploaded.files)
    assert any(k.startswith("artifacts/") and k.endswith("adapter_config.json") for k in uploaded.files)

    # the compiled pipeline names the Secret the pods read credentials from, never a credential
    text = (tmp_path / "star.yaml").read_text()
    assert "star-s3" in text and "AWS_SECRET_ACCESS_KEY" in text
    assert not _leaks(tmp_path) and not _leaks(out)
    for stream in (put.stdout, put.stderr, run.stdout, run.stderr, compiled.stdout, compiled.stderr):
        assert DUMMY_SECRET_ACCESS_KEY not in stream and DUMMY_ACCESS_KEY_ID not in stream


def test_an_unreachable_bucket_stops_the_run_before_any_step(tmp_path: Path) -> None:
    cfg = {"training": {"checkpoints": "s3://star-ckpt/runs"},
           "storage": {"endpoint_url": "http://127.0.0.1:9", "attempts": 2}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    result = _star("run", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "run"), timeout=120)
    assert result.returncode == 2
    message = " ".join((result.stdout + result.stderr).split())
    assert "training.checkpoints s3://star-ckpt/runs cannot be used" in message
    assert not (tmp_path / "run" / "artifacts").exists()
