"""The compiled package (`star compile`) as Kubeflow reads it: one iteration sub-DAG definition used by every
iteration, the shard fan-out, early stop, and placement for a GPU and a TPU cluster, with no secret value
anywhere."""

from pathlib import Path
from typing import Any

import pytest

from pipelines.config import RunConfig
from pipelines.package import compile_package, read_package
from pipelines.star_pipeline import build_pipeline

SECRET_VALUE = "AKIA-not-a-real-key-123"


def compile_config(cfg: dict, tmp_path: Path) -> tuple[dict, dict, str]:
    """The package as `star compile` writes it (KFP's compiler, then the per-use copies folded)."""
    path = tmp_path / "star.yaml"
    compile_package(build_pipeline(RunConfig.model_validate(cfg)), path)
    spec, platform = read_package(path)
    return spec, platform or {}, path.read_text()


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
    assert _by_prefix(ex, "exec-generate-op")  # generation and rationalization: one task per shard
    for gen in _by_prefix(ex, "exec-generate-op"):
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
    for task in spec["components"]["comp-star-iteration"]["dag"]["tasks"].values():
        if "componentRef" in task and "for-loop" not in task["componentRef"]["name"]:
            assert task["retryPolicy"]["maxRetryCount"] >= 2
    assert SECRET_VALUE not in text and "AWS_SECRET_ACCESS_KEY" in text  # the key name, never a value


def _seconds(duration: str) -> int:
    return int(float(duration.rstrip("s")))


def test_a_long_step_is_retried_until_its_last_attempt_could_have_timed_out(tmp_path: Path) -> None:
    """Argo counts the retry policy's backoff_max_duration from the first attempt's start: a train step preempted
    late in its 24-hour timeout must still be retried (and resume from its checkpoint), so the window covers
    every attempt to its timeout and the waits between them."""
    spec, _, _ = compile_config(GPU, tmp_path)
    train = spec["components"]["comp-star-iteration"]["dag"]["tasks"]["train-op"]["retryPolicy"]
    retries = train["maxRetryCount"]
    assert retries == 3
    waits = sum(_seconds(train["backoffDuration"]) * int(train["backoffFactor"]) ** i for i in range(retries))
    assert _seconds(train["backoffMaxDuration"]) >= 86400 * (retries + 1) + waits
    for task in spec["components"]["comp-star-iteration"]["dag"]["tasks"].values():
        if "retryPolicy" in task:  # every step: default 6-hour timeout, 2 retries
            assert _seconds(task["retryPolicy"]["backoffMaxDuration"]) >= 3 * 6 * 3600


def test_gpu_shape_sub_dags_shards_and_early_stop(tmp_path: Path) -> None:
    spec, _, _ = compile_config(GPU, tmp_path)
    comps = spec["components"]
    root = spec["root"]["dag"]["tasks"]
    # one iteration definition, used once per iteration with the iteration number as an input
    iterations = {t["taskInfo"]["name"]: t for t in root.values() if t["componentRef"]["name"] == "comp-star-iteration"}
    assert sorted(iterations) == ["iteration 1", "iteration 2", "iteration 3"]
    assert not [c for c in comps if c.startswith("comp-star-iteration-")]
    for n in (1, 2, 3):
        assert iterations[f"iteration {n}"]["inputs"]["parameters"]["iteration"]["runtimeValue"]["constant"] == n
    inner = comps["comp-star-iteration"]["dag"]["tasks"]
    loops = [t for t in inner.values() if "parameterIterator" in t]
    assert len(loops) == 1 and loops[0]["parameterIterator"]["items"]["raw"] == "[0, 1, 2, 3]"
    loop_body = comps[loops[0]["componentRef"]["name"]]["dag"]["tasks"]
    assert sorted(t["taskInfo"]["name"] for t in loop_body.values()) == ["generate and rationalize"]
    assert all(t["cachingOptions"] == {} or not t["cachingOptions"].get("enableCache") for t in loop_body.values())
    fan_in = inner["build-finetune-set-op"]["inputs"]["artifacts"]["attempts"]
    assert fan_in["taskOutputArtifact"]["producerTask"].startswith("for-loop")  # dsl.Collected
    # early stop: no condition anywhere (a flat chain); a gate in front of every iteration reads the history
    # so far, and its answer tells the iteration's steps whether to do anything
    assert "triggerPolicy" not in str(spec)
    gate_answer = {"taskOutputParameter": {"outputParameterKey": "Output", "producerTask": "?"}}
    for n in (1, 2, 3):
        gate = _task_named(root, f"iteration {n} · early-stop gate")
        assert root[gate]["componentRef"]["name"] == "comp-gate-op"
        gate_answer["taskOutputParameter"]["producerTask"] = gate
        assert iterations[f"iteration {n}"]["inputs"]["parameters"]["active"] == gate_answer
        read = root[gate]["inputs"]["artifacts"]["history"]["taskOutputArtifact"]
        before = "iteration 0 · evaluate" if n == 1 else f"iteration {n - 1}"
        assert read == {"outputArtifactKey": "history", "producerTask": _task_named(root, before)}
    for step in ("train-op", "evaluate-op"):
        assert inner[step]["inputs"]["parameters"]["active"] == {"componentInputParameter": "active"}
    assert loops[0]["inputs"]["parameters"]["pipelinechannel--active"] == {"componentInputParameter": "active"}
    (generate,) = loop_body.values()
    assert generate["inputs"]["parameters"]["active"] == {"componentInputParameter": "pipelinechannel--active"}
    # iteration 3 starts from iteration 2's model and history
    chained = iterations["iteration 3"]["inputs"]["artifacts"]
    for name, output in (("model", "model"), ("history_in", "history")):
        assert chained[name]["taskOutputArtifact"] == {"outputArtifactKey": output,
                                                       "producerTask": _task_named(root, "iteration 2")}


def _task_named(tasks: dict[str, Any], display_name: str) -> str:
    return next(k for k, t in tasks.items() if t["taskInfo"]["name"] == display_name)


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
    root = spec["root"]["dag"]["tasks"]
    names = [t["taskInfo"]["name"] for t in root.values() if t["componentRef"]["name"] == "comp-star-iteration"]
    assert sorted(names) == sorted(f"iteration {n}" for n in range(1, 65))
