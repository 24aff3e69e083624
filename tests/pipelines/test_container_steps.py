"""pipelines/container_steps.py without a container engine: what a container run mounts and the config it runs,
the images it needs, and the sentence a user gets when no engine answers. (A run through a real engine:
tests/images/test_container_run.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.core.errors import StarError
from pipelines.config import RunConfig
from pipelines.container_steps import docker_runner, step_images, with_absolute_paths


def test_local_paths_become_absolute_and_are_mounted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.jsonl").write_text("{}\n")
    (tmp_path / "prompts").mkdir()
    cfg = RunConfig.model_validate({
        "task": {"name": "gsm8k", "path": "data.jsonl", "prompts_dir": "prompts"},
        "model": {"base": "org/some-model", "cache_dir": "cache"},
        "publish": "published",
    })
    out = tmp_path / "run"
    ran, mounts = with_absolute_paths(cfg, out)
    assert ran.task.path == str(tmp_path / "data.jsonl")
    assert ran.task.prompts_dir == str(tmp_path / "prompts")
    assert ran.model.base == "org/some-model"  # a model ID, not a path here
    assert ran.model.cache_dir == str(tmp_path / "cache") and (tmp_path / "cache").is_dir()
    assert ran.publish == str(tmp_path / "published") and (tmp_path / "published").is_dir()
    assert dict(mounts) == {
        out: True, tmp_path / "data.jsonl": False, tmp_path / "prompts": False, tmp_path / "cache": True,
        tmp_path / "published": True,
    }


def test_bucket_locations_are_left_alone(tmp_path: Path) -> None:
    cfg = RunConfig.model_validate({"publish": "s3://bucket/runs/x", "training": {"checkpoints": "gs://b/ckpt"}})
    ran, mounts = with_absolute_paths(cfg, tmp_path)
    assert ran.publish == "s3://bucket/runs/x" and ran.training.checkpoints == "gs://b/ckpt"
    assert mounts == [(tmp_path, True)]


def test_the_images_a_run_needs_follow_the_cluster_placement() -> None:
    cfg = RunConfig.model_validate({"cluster": {"images": {"registry": "localhost/r", "tag": "t"}}})
    assert step_images(cfg) == ["localhost/r/star-runtime:t"]
    gpu = RunConfig.model_validate({"cluster": {"images": {"registry": "localhost/r", "tag": "t"},
                                                "placement": {"train": {"gpus": 1}}}})
    assert step_images(gpu) == ["localhost/r/star-runtime:t", "localhost/r/star-train-gpu:t"]


def test_no_engine_is_one_sentence_naming_what_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(StarError, match="found no container engine at unix://.*nothing.sock: start Docker, or "
                                        "podman's socket"):
        docker_runner(RunConfig(), [(tmp_path, True)])
