"""The `training` section of a run configuration: how an iteration fine-tunes, for how long, on what hardware."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from components.core.strict import Strict
from components.storage import is_remote, join_location
from components.training.deepspeed_config import DistributedConfig
from components.training.lr_schedule import LrSchedule


class ScheduleConfig(Strict):
    """Training length of iteration n (n = 1, 2, ...)."""

    kind: Literal["exponential", "linear", "epochs"] = "exponential"
    start_steps: int = Field(40, ge=1)
    grow: float = Field(1.2, gt=0.0)  # exponential: start_steps * grow^(n-1)
    add_steps: int = Field(20, ge=0)  # linear: start_steps + add_steps * (n-1)
    base_epochs: float = Field(1.0, gt=0.0)  # epochs: (base_epochs + add_epochs * (n-1)) passes
    add_epochs: float = Field(0.0, ge=0.0)

    def steps(self, iteration: int, kept_examples: int, examples_per_step: int) -> int:
        if iteration < 1:
            raise ValueError("iterations are numbered from 1")
        n = iteration - 1
        if self.kind == "exponential":
            return int(self.start_steps * self.grow**n)
        if self.kind == "linear":
            return self.start_steps + self.add_steps * n
        epochs = self.base_epochs + self.add_epochs * n
        return math.ceil(kept_examples * epochs / examples_per_step)


class TrainingConfig(Strict):
    method: Literal["lora", "full"] = "lora"
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    lora_target_modules: list[str] | Literal["all-linear"] = "all-linear"
    learning_rate: float = Field(1e-4, gt=0.0)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=8)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    #: The learning rate over an iteration's steps after warm-up: constant, or decayed to zero by its last step.
    lr_schedule: LrSchedule = "constant"
    weight_decay: float = Field(0.0, ge=0.0)
    #: On a CPU (without DeepSpeed): bf16 runs the linear layers under bfloat16 autocast (weights, optimizer,
    #: attention and loss stay float32); auto takes it where the CPU multiplies bf16 in hardware (AMX or AVX-512
    #: BF16), fp32 never. Results follow the arithmetic: a run is reproduced on a CPU that makes the same choice.
    cpu_precision: Literal["auto", "bf16", "fp32"] = "auto"
    #: Start each iteration from the previous iteration's weights instead of the base model (paper: off).
    continue_from_previous: bool = False
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    #: DeepSpeed ZeRO over the GPUs of the pod (torchrun/deepspeed), or over several nodes via a TrainJob.
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    #: Save a resumable checkpoint (weights, optimizer, scheduler, RNG, data position) every this many steps,
    #: and when the step is told to stop (SIGTERM); a retried or resumed train step continues from the last one.
    #: 0: never.
    checkpoint_every: int = Field(50, ge=0)
    #: Where checkpoints go: a folder path or an s3:// / gs:// URL. Local runs default to OUT/checkpoints; on a
    #: cluster set a bucket URL, or checkpoints live on the pod's disk and do not outlive a preemption. A
    #: multi-node job (`distributed.nodes > 1`) needs a URL its pods reach, by default
    #: `<distributed.staging_uri>/checkpoints`.
    checkpoints: str | None = None
    #: On TPU (XLA): where compiled programs are kept between train steps, a folder path or an s3:// / gs:// URL,
    #: so later iterations load them instead of compiling again. None: `<checkpoints>/xla-compile-cache` when
    #: `checkpoints` is set, else only the pod's own `$XLA_PERSISTENT_CACHE_PATH`.
    compile_cache: str | None = None

    def compile_cache_location(self) -> str | None:
        checkpoints = self.checkpoint_location()
        if self.compile_cache is not None or checkpoints is None:
            return self.compile_cache
        return join_location(checkpoints, "xla-compile-cache")

    @model_validator(mode="after")
    def _checkpoints_the_job_reaches(self) -> TrainingConfig:
        if self.distributed.nodes > 1 and self.checkpoints is not None and not is_remote(self.checkpoints):
            raise ValueError(
                f"training.checkpoints is {self.checkpoints!r}, a path on the train step's pod, but the "
                f"{self.distributed.nodes} nodes of the training job cannot reach it: use an s3:// or gs:// URL, or "
                "leave it unset to keep checkpoints under training.distributed.staging_uri"
            )
        return self

    def checkpoint_location(self) -> str | None:
        """Where this training's checkpoints go, None when nowhere (then a preempted run starts over)."""
        if self.checkpoints is None and self.distributed.nodes > 1 and self.distributed.staging_uri:
            return join_location(self.distributed.staging_uri, "checkpoints")
        return self.checkpoints
