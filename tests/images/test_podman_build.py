"""images/podman_build.py without an engine: what it reads from the bake file and the Dockerfiles, which bases a
stand-in replaces, and how this machine's pip settings reach a build."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.images.engine import load_podman_build

podman_build = load_podman_build()


def test_the_bake_files_targets_with_registry_and_version_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY", "localhost/x")
    monkeypatch.setenv("VERSION", "9.9")
    targets = podman_build.bake_targets()
    assert list(targets) == ["runtime", "train-gpu", "vllm", "train-tpu"]
    assert targets["train-gpu"].dockerfile.name == "train-gpu.Dockerfile"
    assert targets["train-gpu"].stage == "runtime"
    assert targets["vllm"].tags == ["localhost/x/star-vllm:9.9"]


def test_bases_and_stages_of_each_dockerfile() -> None:
    gpu = podman_build.bake_targets()["train-gpu"].dockerfile
    assert podman_build.stage_names(gpu) == ["uv", "build", "runtime"]
    assert [ref.split(":")[0] for ref in podman_build.base_images(gpu)] == [
        "ghcr.io/astral-sh/uv", "nvidia/cuda", "nvidia/cuda"]


@pytest.mark.parametrize(("ref", "stands_in"), [
    ("python:3.11.14-slim-bookworm@sha256:" + "0" * 64, True),
    ("docker.io/library/python:3.11.14-slim-bookworm", True),
    ("python:3.12-slim-bookworm", False),
    ("nvidia/cuda:13.0.1-devel-ubuntu24.04@sha256:" + "0" * 64, False),
    ("vllm/vllm-openai:v0.30.0", False),
])
def test_only_the_python_3_11_bookworm_base_has_a_stand_in(ref: str, stands_in: bool) -> None:
    assert bool(podman_build.STANDS_IN_FOR.match(ref)) is stands_in


def test_the_pip_settings_and_the_files_they_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wheels").mkdir()
    (tmp_path / "index" / "simple").mkdir(parents=True)
    (tmp_path / "constraints.txt").write_text("torch<=2.14.1\n")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nconstraint = {tmp_path}/constraints.txt\n"
                    f"extra-index-url = file://{tmp_path}/index/simple https://mirror.example/simple\n"
                    "[install]\nno-compile = true\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    settings = podman_build.pip_settings(sys.executable)
    assert settings["global"]["find-links"] == str(tmp_path / "wheels")  # from the environment
    assert settings["global"]["constraint"] == f"{tmp_path}/constraints.txt"
    assert settings["install"]["no-compile"] == "true"
    mounts = podman_build.pip_mounts(settings)
    # a file:// index is mounted with the folder its pages link into; URLs and missing paths are not mounts
    assert set(mounts) >= {tmp_path / "wheels", tmp_path / "constraints.txt", tmp_path / "index"}
    assert all(p.exists() for p in mounts)
