"""Where each step runs on a cluster: images, resources, GPU/TPU node pools, timeouts, retries, and the
object-storage credentials (from a Kubernetes Secret, never a pipeline parameter). Applied to the compiled
pipeline with kfp-kubernetes; `kfp.local` ignores it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from components.core.errors import StarError
from components.core.tolerations import Toleration

if TYPE_CHECKING:
    from kfp.dsl import PipelineTask

    from components.training.deepspeed_config import DistributedConfig
    from components.training.trainjob import JobSettings, SecretEnv

#: `submit`: the train step of a multi-node run, which only stages files and creates and watches the training job;
#: it runs on a small CPU pod (the job's pods get the train placement), with the train step's timeout and retries.
StepKind = Literal["cpu", "generate", "train", "evaluate", "submit"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImagesConfig(_Strict):
    """The one place image references come from: `{registry}/{name}:{tag}`, or `{registry}/{name}` when a
    name carries its digest (`star-runtime@sha256:...`)."""

    registry: str = "ghcr.io/example"
    tag: str = "0.1.0"
    runtime: str = "star-runtime"
    train_gpu: str = "star-train-gpu"
    vllm: str = "star-vllm"
    train_tpu: str = "star-train-tpu"
    #: docker-registry Secrets in the run's namespace that every step (and training job pod) pulls with.
    pull_secrets: list[str] = Field(default_factory=list)

    @field_validator("tag", mode="before")
    @classmethod
    def _tag_is_text(cls, v: object) -> object:
        return str(v) if isinstance(v, int | float) else v  # `--set cluster.images.tag=1.0` is a tag, not a number

    def ref(self, image: Literal["runtime", "train_gpu", "vllm", "train_tpu"]) -> str:
        name = getattr(self, image)
        return f"{self.registry}/{name}" if "@sha256:" in name else f"{self.registry}/{name}:{self.tag}"


class StepResources(_Strict):
    cpu_request: str = "1"
    cpu_limit: str = "2"
    memory_request: str = "4G"
    memory_limit: str = "8G"
    #: GPUs (nvidia.com/gpu) for the step's pod; 0 runs on CPU nodes.
    gpus: int = Field(0, ge=0)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    #: Size of the memory-backed /dev/shm mounted into GPU steps (NCCL, dataloaders).
    shm_size: str = "16Gi"
    timeout_s: int = Field(6 * 3600, ge=60)
    retries: int = Field(2, ge=0, le=10)


def _gpu_step(**kw: object) -> StepResources:
    defaults: dict = {"cpu_request": "8", "cpu_limit": "16", "memory_request": "64G", "memory_limit": "128G",
                      "tolerations": [Toleration(key="nvidia.com/gpu")]}
    defaults.update(kw)
    return StepResources(**defaults)


class TPUConfig(_Strict):
    """Training on a GKE TPU node pool."""

    accelerator: str = "tpu-v5-lite-podslice"
    topology: str = "2x4"
    chips: int = Field(8, ge=1)


class PlacementConfig(_Strict):
    cpu: StepResources = Field(default_factory=StepResources)
    generate: StepResources = Field(default_factory=StepResources)
    train: StepResources = Field(default_factory=StepResources)
    #: Evaluation generates with the same model and engine as the generate step, so every field it does not set
    #: is taken from `generate` (GPUs, CPU, memory, node selector, tolerations, timeout).
    evaluate: StepResources = Field(default_factory=StepResources)
    #: When set, the train step runs on TPU (google.com/tpu) instead of GPUs.
    tpu: TPUConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _evaluate_like_generate(cls, data: object) -> object:
        if not isinstance(data, dict) or "generate" not in data:
            return data
        generate = data["generate"]
        base = generate.model_dump(exclude_unset=True) if isinstance(generate, StepResources) else dict(generate or {})
        evaluate = data.get("evaluate")
        own = (evaluate.model_dump(exclude_unset=True) if isinstance(evaluate, StepResources)
               else dict(evaluate or {}))
        return {**data, "evaluate": {**base, **own}}


class StorageCredentials(_Strict):
    #: Kubernetes Secret holding object-storage credentials; its keys become environment variables. The Helm
    #: chart's Secret is `<release>-object-store` (`<release>-star-object-store` when the release name does not
    #: contain "star"); its upload hook sets this for the pipeline it registers.
    secret: str | None = None
    #: Secret key -> environment variable, each required (a missing key stops the pod from starting).
    keys: dict[str, str] = Field(
        default_factory=lambda: {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
                                 "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}
    )
    #: Secret key -> environment variable, each set only when the Secret has it: an S3-compatible endpoint
    #: (boto3 reads AWS_ENDPOINT_URL) kept beside the credentials.
    optional_keys: dict[str, str] = Field(default_factory=lambda: {"AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL"})


PIPELINE_ROOT_SCHEMES = ("s3://", "gs://", "minio://")


class ClusterConfig(_Strict):
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    placement: PlacementConfig = Field(default_factory=PlacementConfig)
    storage: StorageCredentials = Field(default_factory=StorageCredentials)
    #: Where KFP writes this pipeline's artifacts (`s3://bucket/prefix`, `gs://…`, `minio://…`). Compiled into the
    #: package as its default pipeline root, which the UI's Create-run form fills in and `star submit` passes
    #: with the run; None: the namespace's `kfp-launcher` ConfigMap decides.
    pipeline_root: str | None = None

    @field_validator("pipeline_root")
    @classmethod
    def _object_store_root(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith(PIPELINE_ROOT_SCHEMES) or len(v.split("://", 1)[1].strip("/")) == 0):
            raise ValueError(f"pipeline_root {v!r} must be a bucket URL: s3://bucket/prefix, gs://bucket/prefix "
                             "or minio://bucket/prefix (KFP's launcher supports no other scheme)")
        return v


def image_for(kind: StepKind, cluster: ClusterConfig, backend: str) -> str:
    images, placement = cluster.images, cluster.placement
    if kind == "train":
        if placement.tpu is not None:
            return images.ref("train_tpu")
        return images.ref("train_gpu") if placement.train.gpus else images.ref("runtime")
    if kind in ("generate", "evaluate"):
        if backend == "vllm":
            return images.ref("vllm")
        return images.ref("train_gpu") if getattr(placement, kind).gpus else images.ref("runtime")
    return images.ref("runtime")


RETRY_BACKOFF_S = 60  # wait before the first retry
RETRY_BACKOFF_FACTOR = 2  # each later wait doubles


def retry_window_s(res: StepResources) -> int:
    """The retry policy's `backoff_max_duration`. Argo counts it (`retryStrategy.backoff.maxDuration`) from the
    start of the first attempt, not per attempt, and retries no more once it has passed: it must cover every
    attempt running to its timeout plus the waits between them, or a long step preempted late is never
    retried (and never resumes from its checkpoint)."""
    waits = sum(RETRY_BACKOFF_S * RETRY_BACKOFF_FACTOR**i for i in range(res.retries))
    return res.timeout_s * (res.retries + 1) + waits


def place(task: PipelineTask, kind: StepKind, cluster: ClusterConfig, retries: bool = True) -> PipelineTask:
    """Resources, node pool, /dev/shm, timeout, retries (unless `retries` is off) and credentials for one
    step."""
    from kfp import kubernetes

    placement = cluster.placement
    if kind == "submit":
        res = placement.cpu.model_copy(update={"timeout_s": placement.train.timeout_s,
                                               "retries": placement.train.retries})
    else:
        res = placement.cpu if kind == "cpu" else getattr(placement, kind)
    task.set_cpu_request(res.cpu_request).set_cpu_limit(res.cpu_limit)
    task.set_memory_request(res.memory_request).set_memory_limit(res.memory_limit)
    tolerations = list(res.tolerations)
    if kind == "train" and placement.tpu is not None:
        tpu = placement.tpu
        task.set_accelerator_type("google.com/tpu").set_accelerator_limit(tpu.chips)
        kubernetes.add_node_selector(task, "cloud.google.com/gke-tpu-accelerator", tpu.accelerator)
        kubernetes.add_node_selector(task, "cloud.google.com/gke-tpu-topology", tpu.topology)
        tolerations.append(Toleration(key="google.com/tpu"))
        tolerations = [t for t in tolerations if t.key != "nvidia.com/gpu"]
    elif res.gpus:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(res.gpus)
        kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory",
                                   size_limit=res.shm_size)
    for key, value in res.node_selector.items():
        kubernetes.add_node_selector(task, key, value)
    if kind not in ("cpu", "submit") and (res.gpus or (kind == "train" and placement.tpu is not None)):
        for t in tolerations:
            kubernetes.add_toleration(task, key=t.key, operator=t.operator, value=t.value, effect=t.effect)
    if cluster.images.pull_secrets:
        kubernetes.set_image_pull_secrets(task, cluster.images.pull_secrets)
    kubernetes.set_timeout(task, res.timeout_s)
    if retries and res.retries:
        task.set_retry(num_retries=res.retries, backoff_duration=f"{RETRY_BACKOFF_S}s",
                       backoff_factor=RETRY_BACKOFF_FACTOR, backoff_max_duration=f"{retry_window_s(res)}s")
    if cluster.storage.secret:
        kubernetes.use_secret_as_env(task, secret_name=cluster.storage.secret,
                                     secret_key_to_env=cluster.storage.keys)
        if cluster.storage.optional_keys:
            kubernetes.use_secret_as_env(task, secret_name=cluster.storage.secret,
                                         secret_key_to_env=cluster.storage.optional_keys, optional=True)
    return task


def check_engines(cluster: ClusterConfig, backend: str, tensor_parallel_size: int | None, launcher: str = "none"
                  ) -> None:
    """Refuse, when compiling for a cluster, a placement the engine cannot run on: vLLM needs GPUs in the generate
    and evaluate pods, at least as many as one engine spans; training on TPU is one SPMD process per host, not a
    DeepSpeed launcher."""
    if cluster.placement.tpu is not None and launcher != "none":
        raise StarError(
            f"cluster.placement.tpu trains on a TPU host, one XLA process over its chips, but "
            f"training.distributed.launcher is {launcher}: DeepSpeed does not run on XLA; set the launcher to none"
        )
    if backend != "vllm":
        return
    for kind in ("generate", "evaluate"):
        res: StepResources = getattr(cluster.placement, kind)
        if res.gpus == 0:
            raise StarError(
                f"generation.backend is vllm, which needs GPUs, but cluster.placement.{kind}.gpus is 0: set "
                f"cluster.placement.{kind}.gpus (and its node_selector/tolerations for the GPU node pool), or use "
                "generation.backend hf" + (" (evaluate takes every field it does not set from generate)"
                                           if kind == "evaluate" else "")
            )
        if tensor_parallel_size is not None and tensor_parallel_size > res.gpus:
            raise StarError(
                f"generation.vllm.tensor_parallel_size is {tensor_parallel_size} but the {kind} pod gets "
                f"{res.gpus} GPU(s): raise cluster.placement.{kind}.gpus or lower tensor_parallel_size"
            )


def _secret_env(storage: StorageCredentials) -> list[SecretEnv]:
    from components.training.trainjob import SecretEnv

    if not storage.secret:
        return []
    required = SecretEnv(secret=storage.secret, keys={env: key for key, env in storage.keys.items()})
    optional = SecretEnv(secret=storage.secret, keys={env: key for key, env in storage.optional_keys.items()},
                         optional=True)
    return [required, optional] if optional.keys else [required]


def job_settings(cluster: ClusterConfig, distributed: DistributedConfig, run_name: str) -> JobSettings | None:
    """What the pods of a multi-node training job need (image, placement of the train step, the storage
    Secret), resolved when the pipeline is compiled; None when training runs in the train step's own pod."""
    from components.training.trainjob import JobPod, JobSettings

    if distributed.nodes <= 1:
        return None
    train = cluster.placement.train
    return JobSettings(
        image=distributed.job_image or cluster.images.ref("train_gpu"),
        pod=JobPod.model_validate({**train.model_dump(include=set(JobPod.model_fields)),
                                   "image_pull_secrets": cluster.images.pull_secrets}),
        secrets=_secret_env(cluster.storage),
        run_name=run_name,
    )
