"""The GPU and vLLM images cannot be built here (their bases come only from a registry), so their pins are checked
against what those bases ship: pip's resolver, for the base's Python and platform, resolves the packages the
image's build installs together with the packages the base already has, pinned as the base has them
(`pip install --dry-run --report`, reading only the packages' metadata from the index).

What the bases ship, from their public sources:
- `vllm/vllm-openai:v<V>`: vLLM's docker/Dockerfile installs Python 3.12 (PYTHON_VERSION=3.12, python3.12-venv
  included) on Ubuntu 22.04 and the vLLM wheel with its dependencies into that Python (`uv pip install --system`),
  so the base has vllm==V and the torch that vLLM V pins; our image layers a venv over it
  (`--system-site-packages`), which must keep both.
- `nvidia/cuda:<X.Y.Z>-devel-ubuntu24.04`: the CUDA X.Y toolkit (nvcc, which compiles DeepSpeed's ops) on Ubuntu
  24.04 (glibc 2.39); Python 3.11 comes from uv. DeepSpeed refuses to build its ops when torch's CUDA major differs
  from nvcc's, and torch's CUDA runtime must not be newer than the toolkit it is compiled beside."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.images.test_images import stages
from tests.paths import REPO

#: pip that reads the index's metadata files (PEP 658), so a dry run downloads no wheel
PIP = "pip==26.3"


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def pin(requirements: list[str], name: str) -> str:
    found = [m.group(1) for r in requirements if (m := re.match(rf"{re.escape(name)}\s*==\s*([\w.]+)$", r))]
    assert found, f"pyproject.toml does not pin {name}=="
    return found[0]


def platforms(glibc_minor: int) -> list[str]:
    """pip's --platform tags for an x86_64 Linux with glibc 2.<glibc_minor>."""
    tags = [f"manylinux_2_{minor}_x86_64" for minor in range(glibc_minor, 4, -1)]
    return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


@pytest.fixture(scope="session")
def pip_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pip")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(folder), PIP],
                   check=True, timeout=300)
    return next(folder.glob("pip-*.whl"))


@pytest.fixture(scope="session")
def pure_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels built here of pure-Python packages published as source only (kept for the session)."""
    return tmp_path_factory.mktemp("pure-wheels")


def resolve(pip_wheel: Path, wheels: Path, tmp_path: Path, python: str, glibc_minor: int,
            requirements: list[str], constraints: list[str]) -> dict[str, str]:
    """name -> version of everything pip would install for the base (its Python and platform) from the index,
    with the base's own packages as constraints."""
    (tmp_path / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (tmp_path / "constraints.txt").write_text("\n".join(constraints) + "\n")
    report = tmp_path / "report.json"
    # this machine's own wheel stores and caps (find-links, extra indexes, constraints) say nothing of what the
    # base installs: pip reads no configuration file here, and only the index
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in ("PIP_INDEX_URL", "PIP_CERT")}
    env["PIP_CONFIG_FILE"] = os.devnull
    cmd = [sys.executable, str(pip_wheel / "pip"), "install", "--dry-run", "--ignore-installed", "--quiet",
           "--disable-pip-version-check", "--target", str(tmp_path / "target"), "--report", str(report),
           "--python-version", python, "--only-binary=:all:", "--find-links", str(wheels),
           *(f"--platform={tag}" for tag in platforms(glibc_minor)),
           "-r", str(tmp_path / "requirements.txt"), "-c", str(tmp_path / "constraints.txt")]
    for _ in range(5):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        # a target platform admits wheels only: a pure-Python package published as source only (kfp-server-api)
        # is built into a wheel here, which is the same on every platform, and the resolution tried again
        source_only = re.search(r"No matching distribution found for ([^\s]+) \(from", proc.stderr)
        if proc.returncode == 0 or source_only is None:
            break
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels),
                        source_only.group(1)], check=True, timeout=600, capture_output=True)
        built = sorted(wheels.glob("*.whl"))
        assert all(w.name.endswith(("-py3-none-any.whl", "-py2.py3-none-any.whl")) for w in built), (
            f"{source_only.group(1)} is not pure Python: {[w.name for w in built]}")
    assert proc.returncode == 0, f"the pins do not resolve on the base:\n{proc.stderr[-4000:]}"
    installs = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in installs}


def base_ref(dockerfile: str, prefix: str) -> str:
    refs = [s["image"] for s in stages(REPO / "images" / dockerfile) if s["image"].startswith(prefix)]
    assert refs, f"{dockerfile} has no {prefix} base"
    return refs[0]


def test_the_vllm_image_keeps_the_vllm_and_torch_its_base_ships(pip_wheel: Path, pure_wheels: Path,
                                                                 tmp_path: Path) -> None:
    project = pyproject()
    vllm = re.match(r"vllm/vllm-openai:v([\w.]+)@", base_ref("vllm.Dockerfile", "vllm/vllm-openai:"))
    assert vllm, "the vLLM base is not vllm/vllm-openai:v<version>@sha256:..."
    torch = pin(project["optional-dependencies"]["vllm"], "torch")
    # the base has vLLM's own version; the torch it has is the one that vLLM pins, which must be ours
    resolved = resolve(pip_wheel, pure_wheels, tmp_path, "3.12", 35,
                       [*project["dependencies"], *project["optional-dependencies"]["vllm"]],
                       [f"vllm=={vllm.group(1)}"])
    assert resolved["vllm"] == vllm.group(1) == pin(project["optional-dependencies"]["vllm"], "vllm")
    assert resolved["torch"] == torch, f"vLLM {vllm.group(1)} installs torch {resolved['torch']}, we pin {torch}"
    assert resolved["transformers"] == pin(project["dependencies"], "transformers")


def test_the_gpu_image_resolves_torch_for_the_cuda_of_its_base(pip_wheel: Path, pure_wheels: Path,
                                                                tmp_path: Path) -> None:
    project = pyproject()
    cuda = re.match(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-devel-ubuntu24\.04@", base_ref("train-gpu.Dockerfile",
                                                                                   "nvidia/cuda:"))
    assert cuda, "the GPU build stage's base is not nvidia/cuda:<X.Y.Z>-devel-ubuntu24.04@sha256:..."
    deepspeed = pin(project["optional-dependencies"]["gpu"], "deepspeed")
    # DeepSpeed is published as source only: its own requirements come from the build in this environment
    assert importlib.metadata.version("deepspeed") == deepspeed
    ds_requires = [r for r in importlib.metadata.requires("deepspeed") or [] if "extra ==" not in r]
    torch = pin(project["optional-dependencies"]["gpu"], "torch")
    resolved = resolve(pip_wheel, pure_wheels, tmp_path, "3.11", 39,
                       [*project["dependencies"], f"torch=={torch}", *ds_requires], [])
    assert resolved["torch"] == torch
    runtime = resolved.get("nvidia-cuda-runtime") or resolved.get(f"nvidia-cuda-runtime-cu{cuda.group(1)}")
    assert runtime, f"torch {resolved['torch']} brings no CUDA {cuda.group(1)} runtime: {sorted(resolved)}"
    assert runtime.split(".")[:2] == [cuda.group(1), cuda.group(2)], (
        f"torch's CUDA runtime is {runtime}, the base's toolkit {cuda.group(1)}.{cuda.group(2)}")
