"""Where steps run on a cluster: evaluation sized like generation, engines that cannot run where they are placed
refused at compile time, the pipeline root, and the object store's optional endpoint from the Secret."""

from pathlib import Path
from typing import Any

import pytest

from components.core.errors import StarError
from pipelines.config import RunConfig, load_config
from pipelines.package import compile_package, read_package
from pipelines.placement import PlacementConfig
from pipelines.star_pipeline import build_pipeline
from tests.paths import REPO


def _compile(cfg: RunConfig, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    path = tmp_path / "star.yaml"
    compile_package(build_pipeline(cfg), path)
    spec, platform = read_package(path)
    return spec, platform or {}


def _containers(spec: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [e["container"] for k, e in spec["deploymentSpec"]["executors"].items()
            if k == prefix or k.startswith(prefix + "-")]


def test_evaluate_takes_every_field_it_does_not_set_from_generate() -> None:
    placement = PlacementConfig.model_validate({
        "generate": {"gpus": 1, "cpu_request": "8", "memory_limit": "96G",
                     "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"}},
        "evaluate": {"timeout_s": 7200},
    })
    assert placement.evaluate.gpus == 1 and placement.evaluate.cpu_request == "8"
    assert placement.evaluate.memory_limit == "96G" and placement.evaluate.timeout_s == 7200
    assert placement.evaluate.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert PlacementConfig().evaluate == PlacementConfig().generate


@pytest.mark.parametrize("example", ["gsm8k-gpu", "gsm8k-tpu"])
def test_every_vllm_step_of_the_examples_runs_on_gpus_sized_like_generation(example: str, tmp_path: Path) -> None:
    cfg = load_config(REPO / "examples" / f"{example}.yaml")
    if cfg.generation.backend != "vllm":
        pytest.skip(f"{example} does not generate with vLLM")
    spec, _ = _compile(cfg, tmp_path)
    (generate,) = {str(c["resources"]) for c in _containers(spec, "exec-generate-op")}
    evaluate = _containers(spec, "exec-evaluate-op")
    assert evaluate
    for c in evaluate:
        assert c["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert str(c["resources"]) == generate  # a 7B model: the generate pod's CPU, memory and GPU
        assert c["image"].split("/")[-1].startswith("star-vllm")


@pytest.mark.parametrize("step", ["generate", "evaluate"])
def test_vllm_on_a_pod_without_gpus_is_refused_when_compiling(step: str, tmp_path: Path) -> None:
    gpu = {"gpus": 1, "tolerations": [{"key": "nvidia.com/gpu"}]}
    placement = {"generate": gpu, "evaluate": {"gpus": 0}} if step == "evaluate" else {}
    cfg = RunConfig.model_validate({"generation": {"backend": "vllm"}, "cluster": {"placement": placement}})
    with pytest.raises(StarError, match=f"cluster.placement.{step}.gpus is 0"):
        build_pipeline(cfg)
    build_pipeline(cfg, local=True)  # a local run may use vLLM's CPU build


def test_vllm_spanning_more_gpus_than_the_pod_has_is_refused() -> None:
    cfg = RunConfig.model_validate({"generation": {"backend": "vllm", "vllm": {"tensor_parallel_size": 4}},
                                    "cluster": {"placement": {"generate": {"gpus": 2}}}})
    with pytest.raises(StarError, match="tensor_parallel_size is 4 but the generate pod gets 2"):
        build_pipeline(cfg)


def test_the_pipeline_root_is_compiled_into_the_package(tmp_path: Path) -> None:
    cfg = RunConfig.model_validate({"cluster": {"pipeline_root": "s3://team-a-artifacts/star"}})
    spec, _ = _compile(cfg, tmp_path)
    assert spec["defaultPipelineRoot"] == "s3://team-a-artifacts/star"
    spec, _ = _compile(RunConfig(), tmp_path)
    assert "defaultPipelineRoot" not in spec  # the namespace's kfp-launcher decides
    for bad in ("/tmp/artifacts", "http://bucket/x", "s3://"):
        with pytest.raises(ValueError, match="must be a bucket URL"):
            RunConfig.model_validate({"cluster": {"pipeline_root": bad}})


def test_the_object_store_endpoint_comes_from_the_secret_when_it_has_one(tmp_path: Path) -> None:
    cfg = RunConfig.model_validate({"cluster": {"storage": {"secret": "team-a-s3"}}})
    _, platform = _compile(cfg, tmp_path)
    for name, k8s in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items():
        envs = {(e["secretName"], kv["secretKey"], kv["envVar"], bool(e.get("optional")))
                for e in k8s["secretAsEnv"] for kv in e["keyToEnv"]}
        assert envs == {("team-a-s3", "AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID", False),
                        ("team-a-s3", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", False),
                        ("team-a-s3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL", True)}, name


def test_a_multi_node_train_step_is_a_small_cpu_pod_and_the_job_gets_the_gpus(tmp_path: Path) -> None:
    """The step only stages files and creates and watches the TrainJob: on the job's GPU node pool it would hold a
    GPU node idle, and deadlock a cluster with exactly `nodes` of them."""
    gpu_pool = {"gpus": 8, "cpu_request": "64", "memory_request": "512G", "timeout_s": 43200, "retries": 3,
                "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
                "tolerations": [{"key": "nvidia.com/gpu"}]}
    cfg = RunConfig.model_validate({
        "training": {"distributed": {"launcher": "torchrun", "nodes": 4, "staging_uri": "s3://bucket/jobs"}},
        "cluster": {"images": {"registry": "r.example.com/ml", "tag": "1"}, "placement": {"train": gpu_pool}},
    })
    spec, platform = _compile(cfg, tmp_path)
    (train,) = _containers(spec, "exec-train-op")
    assert train["image"] == "r.example.com/ml/star-runtime:1"
    assert "accelerator" not in train["resources"] and train["resources"]["resourceCpuRequest"] == "1"
    (k8s,) = [e for k, e in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items()
              if k.startswith("exec-train-op")]
    assert "nodeSelector" not in k8s and "tolerations" not in k8s
    assert k8s["activeDeadlineSeconds"] == "43200"  # the train step's timeout: it waits for the whole job
    retry = spec["components"]["comp-star-iteration"]["dag"]["tasks"]["train-op"]["retryPolicy"]
    assert retry["maxRetryCount"] == 3
    job = cfg.train_settings().job
    assert job is not None and job.pod.gpus == 8 and job.image == "r.example.com/ml/star-train-gpu:1"
    assert job.pod.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}


def test_a_private_registry_secret_reaches_every_step_and_every_job_pod(tmp_path: Path) -> None:
    cfg = RunConfig.model_validate({
        "training": {"distributed": {"launcher": "torchrun", "nodes": 2, "staging_uri": "s3://bucket/jobs"}},
        "cluster": {"images": {"registry": "123.dkr.ecr.us-east-1.amazonaws.com/ml", "pull_secrets": ["ecr-pull"]}},
    })
    _, platform = _compile(cfg, tmp_path)
    for name, k8s in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items():
        assert [s.get("secretName") or s.get("secretNameParameter") for s in k8s["imagePullSecret"]] == [
            "ecr-pull"], name
    job = cfg.train_settings().job
    assert job is not None and job.pod.image_pull_secrets == ["ecr-pull"]


def test_deepspeed_on_a_tpu_pool_is_refused_when_compiling() -> None:
    cfg = RunConfig.model_validate({"training": {"distributed": {"launcher": "torchrun"}},
                                    "cluster": {"placement": {"tpu": {}}}})
    with pytest.raises(StarError, match="DeepSpeed does not run on XLA; set the launcher to none"):
        build_pipeline(cfg)
