"""How the train step spreads fine-tuning over processes and nodes, and the DeepSpeed config it generates.

Any launcher other than `none` trains with DeepSpeed ZeRO (stage 2 or 3) through transformers' Trainer
(`TrainingArguments(deepspeed=...)`); the launcher only decides what starts the processes: `torchrun` or the
`deepspeed` launcher, over the GPUs of one pod. With `nodes > 1` the train step creates a Kubeflow Trainer
`TrainJob` (or a Training Operator `PyTorchJob`) whose pods each run `torchrun` (the operators hand it the node
rank and rendezvous address) with the same worker and the same DeepSpeed config.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DistributedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: What starts the training processes in the pod: `none` trains in the step's own process (no DeepSpeed).
    launcher: Literal["none", "torchrun", "deepspeed"] = "none"
    #: Processes per node (None: one per GPU the pod sees, 1 on CPU).
    nproc_per_node: int | None = Field(None, ge=1)
    #: ZeRO stage: 2 shards optimizer states and gradients, 3 also the parameters.
    zero_stage: Literal[2, 3] = 2
    #: bf16 mixed precision (Ampere or newer GPUs).
    bf16: bool = True
    #: Keep optimizer states in CPU memory (DeepSpeed's CPU Adam).
    offload_optimizer: bool = False
    #: Keep parameters in CPU memory (ZeRO-3 only).
    offload_param: bool = False
    #: Nodes (pods) to train on; more than one creates a TrainJob / PyTorchJob from the train step.
    nodes: int = Field(1, ge=1, le=1024)
    #: Which operator runs multi-node training: Kubeflow Trainer v2 (`TrainJob`) or Training Operator v1.
    job_kind: Literal["trainjob", "pytorchjob"] = "trainjob"
    #: Namespace of the job (None: the namespace the train step's pod runs in).
    job_namespace: str | None = None
    #: Image of the job's pods (None: the GPU training image of the run configuration).
    job_image: str | None = None
    #: The job is stopped and deleted after this many seconds.
    job_timeout_s: int = Field(6 * 3600, ge=60)
    #: The ClusterTrainingRuntime a TrainJob refers to (Kubeflow Trainer's PyTorch runtime by default).
    job_runtime: str = "torch-distributed"
    #: Service account of the job's pods (None: the namespace's default).
    job_service_account: str | None = None
    #: Object-storage prefix (s3://, gs://, ...) where the train step and the job's pods exchange the training
    #: set, the starting weights and the result. Needed when `nodes > 1`: the job's pods do not share the step's
    #: filesystem.
    staging_uri: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DistributedConfig:
        if self.offload_param and self.zero_stage != 3:
            raise ValueError("offload_param needs zero_stage 3 (ZeRO-2 keeps every parameter on the GPU)")
        if self.nodes > 1 and self.launcher == "none":
            raise ValueError("nodes > 1 needs a launcher (torchrun or deepspeed): set training.distributed.launcher")
        if self.nodes > 1 and not self.staging_uri:
            raise ValueError("nodes > 1 needs staging_uri, an object-storage prefix the job's pods can read and write")
        return self

    @property
    def uses_deepspeed(self) -> bool:
        return self.launcher != "none"


def deepspeed_config(
    cfg: DistributedConfig,
    *,
    batch_size: int,
    grad_accum: int,
    learning_rate: float,
    weight_decay: float = 0.0,
) -> dict[str, Any]:
    """The DeepSpeed config for transformers' Trainer. Values the run configuration knows are written out (the
    Trainer checks they agree with its arguments); the rest are `"auto"`, filled by the Trainer: the global batch
    (it depends on the world size), gradient clipping, and the bucket sizes (they depend on the model's hidden
    size). Without CPU offload the Trainer's own AdamW and LR schedule are used; with it, DeepSpeed's CPU Adam."""
    zero: dict[str, Any] = {
        "stage": cfg.zero_stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if cfg.zero_stage == 3:
        zero.update(
            stage3_prefetch_bucket_size="auto",
            stage3_param_persistence_threshold="auto",
            stage3_gather_16bit_weights_on_model_save=True,
        )
    if cfg.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if cfg.offload_param:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": cfg.bf16},
        "fp16": {"enabled": False},
        "zero_optimization": zero,
        "steps_per_print": 10**9,  # the step's own progress line reports the loss
        "wall_clock_breakdown": False,
    }
    if cfg.offload_optimizer:
        config["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": learning_rate, "betas": "auto", "eps": "auto", "weight_decay": weight_decay},
        }
    return config
