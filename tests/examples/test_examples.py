"""Every example configuration validates and compiles; the GPU and TPU examples place their steps, each on the
hardware its code uses."""

import re
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


def _step(executor: str) -> str:
    return re.sub(r"^exec-|-op(-\d+)?$", "", executor)


def test_the_tpu_example_puts_on_each_accelerator_only_steps_whose_code_uses_it(tmp_path: Path) -> None:
    cfg = load_config(REPO / "examples" / "gsm8k-tpu.yaml")
    out = tmp_path / "star.yaml"
    compile_package(build_pipeline(cfg), out)
    spec, platform = read_package(out)
    containers = spec["deploymentSpec"]["executors"]
    registry = f"{cfg.cluster.images.registry}/"
    accelerators = {}
    for name, ex in containers.items():
        c = ex["container"]
        accelerators[name] = (c.get("resources", {}).get("accelerator", {}).get("resourceType"),
                              c["image"].removeprefix(registry).split(":")[0])
    steps = {_step(name): value for name, value in accelerators.items()}
    # training: the TPU image on the TPU pool, in one process (the XLA path spreads over the host's chips itself)
    assert steps.pop("train") == ("google.com/tpu", "star-train-tpu")
    assert cfg.training.distributed.launcher == "none" and cfg.cluster.placement.tpu.topology == "2x4"
    dockerfile = (REPO / "images" / "train-tpu.Dockerfile").read_text()
    assert "PJRT_DEVICE=TPU" in dockerfile  # what makes components.training.xla.on_xla() take the XLA path
    assert cfg.training.compile_cache_location() is not None  # compiled programs outlive the train pods
    # generation and evaluation: vLLM on a GPU each
    assert cfg.generation.backend == "vllm"
    assert steps.pop("generate") == steps.pop("evaluate") == ("nvidia.com/gpu", "star-vllm")
    # everything else: CPU pods of the runtime image
    assert steps and set(steps.values()) == {(None, "star-runtime")}, steps
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, value in accelerators.items():
        selector = k8s.get(name, {}).get("nodeSelector", {}).get("labels", {})
        assert ("cloud.google.com/gke-tpu-accelerator" in selector) == (value[0] == "google.com/tpu"), name
        assert ("cloud.google.com/gke-accelerator" in selector) == (value[0] == "nvidia.com/gpu"), name
