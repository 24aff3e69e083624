"""The compiled package (`star compile`) as Kubeflow reads it: one sub-DAG per iteration, the shard
fan-out, early stop, and placement for a GPU and a TPU cluster, with no secret value anywhere."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler

from pipelines.config import RunConfig
from pipelines.star_pipeline import build_pipeline

SECRET_VALUE = "AKIA-not-a-real-key-123"


def compile_config(cfg: dict, tmp_path: Path) -> tuple[dict, dict, str]:
    path = tmp_path / "star.yaml"
    compiler.Compiler().compile(build_pipeline(RunConfig.model_validate(cfg)), str(path))
    text = path.read_text()
    spec, platform = yaml.safe_load_all(text) if "platforms" in text else (yaml.safe_load(text), {})
    return spec, platform, text


def executors(platform: dict) -> dict[str, Any]:
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


GPU = {
    "name": "gsm8k-gpu", "iterations": 3, "num_shards": 4, "evaluation": {"patience": 2},
    "cluster": {
        "images": {"registry": "registry.example.com/ml", "tag": "1.2.3"},
        "storage": {"secret": "star-object-store"},
        "placement": {
            "generate": {"gpus": 1, "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
                         "tolerations": [{"key": "nvidia.com/gpu"}]},
            "train": {"gpus": 8, "cpu_request": "32", "cpu_limit": "64", "memory_request": "256G",
                      "memory_limit": "512G", "shm_size": "64Gi", "timeout_s": 86400, "retries": 3,
                      "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
                      "tolerations": [{"key": "nvidia.com/gpu"}]},
        },
    },
}
TPU = {
    "name": "gsm8k-tpu", "iterations": 2,
    "cluster": {"placement": {"tpu": {"accelerator": "tpu-v5-lite-podslice", "topology": "2x4", "chips": 8}}},
}


def _by_prefix(d: dict, prefix: str) -> list[Any]:
    return [v for k, v in d.items() if k == prefix or k.startswith(prefix + "-")]


def test_gpu_placement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # credentials in the compiling machine's environment must never reach the package
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_VALUE)
    monkeypatch.setenv("KFP_TOKEN", SECRET_VALUE)
    spec, platform, text = compile_config(GPU, tmp_path)
    ex = executors(platform)
    containers = spec["deploymentSpec"]["executors"]
    for train in _by_prefix(containers, "exec-train-op"):
        c = train["container"]
        assert c["image"] == "registry.example.com/ml/star-train-gpu:1.2.3"
        assert c["resources"]["accelerator"]["resourceCount"] == "8"
        assert c["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert c["resources"]["resourceMemoryLimit"] == "512G" and c["resources"]["resourceCpuRequest"] == "32"
    for k8s in _by_prefix(ex, "exec-train-op"):
        assert k8s["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
        assert {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"} in k8s["tolerations"]
        assert k8s["emptyDirMounts"] == [{"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": "64Gi",
                                          "volumeName": "dshm"}]
        assert k8s["activeDeadlineSeconds"] == "86400"
    for gen in _by_prefix(ex, "exec-generate-op") + _by_prefix(ex, "exec-rationalize-op"):
        assert gen["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
        assert gen["emptyDirMounts"][0]["mountPath"] == "/dev/shm"
    for name, k8s in ex.items():  # every step: a timeout and credentials from the Secret only
        assert int(k8s["activeDeadlineSeconds"]) > 0, name
        assert k8s["secretAsEnv"][0]["secretName"] == "star-object-store", name
    for cpu_step in _by_prefix(ex, "exec-report-op") + _by_prefix(ex, "exec-prepare-data-op"):
        assert "tolerations" not in cpu_step and "emptyDirMounts" not in cpu_step
    assert _by_prefix(containers, "exec-report-op")[0]["container"]["image"] == (
        "registry.example.com/ml/star-runtime:1.2.3")
    # retries on every step of an iteration
    for task in spec["components"]["comp-iteration-2"]["dag"]["tasks"].values():
        if "componentRef" in task and "for-loop" not in task["componentRef"]["name"]:
            assert task["retryPolicy"]["maxRetryCount"] >= 2
    assert SECRET_VALUE not in text and "AWS_SECRET_ACCESS_KEY" in text  # the key name, never a value


def test_gpu_shape_sub_dags_shards_and_early_stop(tmp_path: Path) -> None:
    spec, _, _ = compile_config(GPU, tmp_path)
    comps = spec["components"]
    assert {f"comp-iteration-{n}" for n in (1, 2, 3)} <= set(comps)
    inner = comps["comp-iteration-2"]["dag"]["tasks"]
    loops = [t for t in inner.values() if "parameterIterator" in t]
    assert len(loops) == 1 and loops[0]["parameterIterator"]["items"]["raw"] == "[0, 1, 2, 3]"
    loop_body = comps[loops[0]["componentRef"]["name"]]["dag"]["tasks"]
    assert sorted(t["taskInfo"]["name"] for t in loop_body.values()) == [
        "iteration 2 · generate", "iteration 2 · rationalize"]
    assert all(t["cachingOptions"] == {} or not t["cachingOptions"].get("enableCache") for t in loop_body.values())
    fan_in = inner["finetune-set-op"]["inputs"]["artifacts"]["attempts"]
    assert fan_in["taskOutputArtifact"]["producerTask"].startswith("for-loop")  # dsl.Collected
    # iteration 2 runs inside a condition on iteration 1's early-stop check; iteration 3 inside a nested one
    root = spec["root"]["dag"]["tasks"]
    cond = next(t for t in root.values() if "triggerPolicy" in t)
    assert "continue-op" in cond["triggerPolicy"]["condition"] and "== true" in cond["triggerPolicy"]["condition"]
    inner_cond = comps[cond["componentRef"]["name"]]["dag"]["tasks"]
    assert any("triggerPolicy" in t for t in inner_cond.values())
    assert any(t["taskInfo"]["name"] == "iteration 2" for t in inner_cond.values())


def test_tpu_placement(tmp_path: Path) -> None:
    spec, platform, _ = compile_config(TPU, tmp_path)
    for train in _by_prefix(spec["deploymentSpec"]["executors"], "exec-train-op"):
        c = train["container"]
        assert c["image"] == "ghcr.io/example/star-train-tpu:0.1.0"
        assert c["resources"]["accelerator"] == {"count": "8", "resourceCount": "8", "type": "google.com/tpu",
                                                 "resourceType": "google.com/tpu"} or (
            c["resources"]["accelerator"]["resourceType"] == "google.com/tpu"
            and c["resources"]["accelerator"]["resourceCount"] == "8")
    for k8s in _by_prefix(executors(platform), "exec-train-op"):
        assert k8s["nodeSelector"]["labels"] == {"cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
                                                 "cloud.google.com/gke-tpu-topology": "2x4"}
        assert k8s["tolerations"] == [{"effect": "NoSchedule", "key": "google.com/tpu", "operator": "Exists"}]


@pytest.mark.parametrize("patience", [3])
def test_sixty_four_iterations_compile(tmp_path: Path, patience: int | None) -> None:
    spec, _, _ = compile_config({"iterations": 64, "evaluation": {"patience": patience}}, tmp_path)
    assert "comp-iteration-64" in spec["components"]
