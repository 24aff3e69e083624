"""This venv is the TPU image's dependency set: the `tpu` extra's torch and torch_xla (with libtpu), the `gcs`
extra and the project's shared pins, all installed together, and `import torch_xla` works with them; the TPU
Dockerfile installs exactly these extras."""

from __future__ import annotations

import importlib.metadata as metadata
import re
import tomllib

from tests.paths import REPO


def _pins(requirements: list[str]) -> dict[str, str]:
    out = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([\w.]+)", req)
        if m:
            out[m.group(1)] = m.group(3)
    return out


def test_the_tpu_extra_and_the_shared_pins_are_what_is_installed() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    tpu = _pins(project["optional-dependencies"]["tpu"])
    assert set(tpu) == {"torch", "torch_xla"}, "the tpu extra pins torch and torch_xla"
    wanted = {**_pins(project["dependencies"]), **tpu, **_pins(project["optional-dependencies"]["gcs"])}
    installed = {name: metadata.version(name) for name in wanted}
    assert installed == wanted
    assert metadata.version("libtpu")  # torch_xla[tpu] brings the TPU runtime


def test_torch_xla_imports_and_runs_on_its_cpu_device() -> None:
    import torch
    import torch_xla
    import torch_xla.runtime as xr

    assert torch_xla.__version__.startswith(torch.__version__.split("+")[0].rsplit(".", 1)[0])
    assert xr.device_type() == "CPU"
    x = torch.arange(6.0, device=torch_xla.device())
    assert float((x * 2).sum().cpu()) == 30.0


def test_the_tpu_image_installs_this_set() -> None:
    dockerfile = (REPO / "images" / "train-tpu.Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert any('"./[tpu,gcs]"' in line for line in installs), installs
    assert not any(re.search(r"\btorch(_xla)?\s*[=<>~]", line) for line in installs), (
        "the image takes torch and torch_xla from the tpu extra only")
