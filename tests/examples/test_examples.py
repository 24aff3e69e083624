"""Every example configuration validates and compiles; the GPU and TPU examples place their steps."""

from pathlib import Path

import pytest

from pipelines.config import load_config
from pipelines.package import compile_package, read_package
from pipelines.star_pipeline import build_pipeline
from tests.paths import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_compiles(path: Path, tmp_path: Path) -> None:
    cfg = load_config(path)
    out = tmp_path / "star.yaml"
    compile_package(build_pipeline(cfg), out)
    spec, _ = read_package(out)
    names = {t["taskInfo"]["name"] for t in spec["root"]["dag"]["tasks"].values()
             if t["componentRef"]["name"] == "comp-star-iteration"}
    assert names == {f"iteration {n}" for n in range(cfg.start.iteration, cfg.iterations + 1)}


def test_gpu_and_tpu_examples_are_what_the_issue_asks() -> None:
    gpu = load_config(REPO / "examples" / "gsm8k-gpu.yaml")
    assert gpu.cluster.placement.train.gpus == 8 and gpu.num_shards == 4 and gpu.generation.backend == "vllm"
    assert "7B" in gpu.model.base or "8B" in gpu.model.base
    tpu = load_config(REPO / "examples" / "gsm8k-tpu.yaml")
    assert tpu.cluster.placement.tpu is not None and tpu.cluster.placement.tpu.accelerator.startswith("tpu-v5")
