"""Every example configuration validates and compiles; the GPU and TPU examples place their steps."""

from pathlib import Path

import pytest
import yaml
from kfp import compiler

from pipelines.config import load_config
from pipelines.star_pipeline import build_pipeline

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_compiles(path: Path, tmp_path: Path) -> None:
    cfg = load_config(path)
    out = tmp_path / "star.yaml"
    compiler.Compiler().compile(build_pipeline(cfg), str(out))
    spec = next(yaml.safe_load_all(out.read_text()))
    assert f"comp-iteration-{cfg.iterations}" in spec["components"]


def test_gpu_and_tpu_examples_are_what_the_issue_asks() -> None:
    gpu = load_config(Path(__file__).resolve().parents[1] / "examples" / "gsm8k-gpu.yaml")
    assert gpu.cluster.placement.train.gpus == 8 and gpu.num_shards == 4 and gpu.generation.backend == "vllm"
    assert "7B" in gpu.model.base or "8B" in gpu.model.base
    tpu = load_config(Path(__file__).resolve().parents[1] / "examples" / "gsm8k-tpu.yaml")
    assert tpu.cluster.placement.tpu is not None and tpu.cluster.placement.tpu.accelerator.startswith("tpu-v5")
