"""The run configuration: one YAML file, validated by these models."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from components.backends.sampling import SamplingConfig
from components.backends.vllm import VLLMConfig
from components.base_model import SeedPretraining
from components.distributed.deepspeed_config import DistributedConfig
from components.errors import StarError
from components.lr_schedule import LrSchedule
from components.prepare_model import BUILTIN_TINY
from components.storage import StorageConfig
from components.storage import configure as configure_storage
from components.tasks import ArithmeticConfig, TaskConfig
from pipelines.placement import ClusterConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    #: A Hugging Face model ID, a local `save_pretrained` folder, `builtin:tiny-arithmetic` (the demo's tiny
    #: model, pre-trained locally on a seed set and cached) or `builtin:tiny-untrained` (random weights, for
    #: CPU smoke runs of any task).
    base: str = BUILTIN_TINY
    builtin: SeedPretraining = Field(default_factory=SeedPretraining)
    #: Where built-in base models are cached (default: ~/.cache/star/models).
    cache_dir: str | None = None


class GenerationConfig(_Strict):
    #: `hf` (transformers, CPU or GPU) or `vllm` (GPU; offline engine, LoRA adapters served without merging).
    backend: Literal["hf", "vllm"] = "hf"
    vllm: VLLMConfig = Field(default_factory=VLLMConfig)
    batch_size: int = Field(32, ge=1)
    max_new_tokens: int = Field(256, ge=1)
    num_samples: int = Field(1, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    #: At most this many distinct kept rationales per question enter the fine-tuning set.
    max_per_question: int = Field(1, ge=1)
    #: Answer without a rationale (the paper's direct baseline).
    direct: bool = False
    #: Drop the few-shot prefix after iteration 1 (the fine-tuned model no longer needs it).
    no_prompt: bool = False

    def sampling(self, seed: int) -> SamplingConfig:
        return SamplingConfig(
            num_samples=self.num_samples, temperature=self.temperature, top_p=self.top_p,
            max_new_tokens=self.max_new_tokens, seed=seed,
        )


class RationalizationConfig(_Strict):
    #: Each question the model got wrong is rationalized with this probability (0 disables rationalization).
    p_rationalization: float = Field(1.0, ge=0.0, le=1.0)
    #: Share of rationalized examples saved *with* the hint in their prompt (the paper: 0).
    p_show_hint_save: float = Field(0.0, ge=0.0, le=1.0)


class ScheduleConfig(_Strict):
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


class TrainingConfig(_Strict):
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
    #: cluster set a bucket URL, or checkpoints live on the pod's disk and do not outlive a preemption.
    checkpoints: str | None = None


class EvaluationConfig(_Strict):
    #: Sample rationales per iteration shown in the report.
    report_samples: int = Field(3, ge=0)
    #: Besides greedy accuracy: this many samples per held-out question for maj@k and pass@k (1: greedy only).
    num_samples: int = Field(1, ge=1)
    temperature: float = Field(0.7, gt=0.0)
    #: Stop early when held-out accuracy has not improved for this many iterations (None: never).
    patience: int | None = Field(None, ge=1)
    #: Also run, beside STaR, the ablation without rationalization (p_rationalization 0) and a control that
    #: trains the base model on its seed set for as many steps as STaR trains; the report plots all three.
    baselines: bool = False


class RunConfig(_Strict):
    name: str = Field("star", pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
    seed: int = 0
    iterations: int = Field(3, ge=1, le=256)
    task: TaskConfig = Field(default_factory=ArithmeticConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    rationalization: RationalizationConfig = Field(default_factory=RationalizationConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    #: Generation (and rationalization) fan out over this many shards, one pod each on a cluster.
    num_shards: int = Field(1, ge=1, le=1024)
    #: How to reach object storage (endpoint, region, path-style, retries) for s3:// and gs:// locations.
    storage: StorageConfig = Field(default_factory=StorageConfig)
    #: Images, placement and credentials on a cluster (ignored by local runs).
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)

    @model_validator(mode="after")
    def _builtin_needs_arithmetic(self) -> RunConfig:
        if self.model.base == BUILTIN_TINY and self.task.name != "arithmetic":
            raise ValueError(f"model.base {BUILTIN_TINY!r} only knows the arithmetic task")
        return self

    @model_validator(mode="after")
    def _baselines_need_a_seed_set(self) -> RunConfig:
        if not self.evaluation.baselines:
            return self
        if self.model.base != BUILTIN_TINY:
            raise ValueError(f"evaluation.baselines needs model.base {BUILTIN_TINY!r}: the control trains on the "
                             "seed set the base model was pre-trained on, known only for the built-in model")
        if self.training.schedule.kind == "epochs":
            raise ValueError("evaluation.baselines needs a step schedule (training.schedule.kind exponential or "
                             "linear), so that the control trains exactly as many steps as STaR")
        if self.evaluation.patience is not None or self.training.continue_from_previous:
            raise ValueError("evaluation.baselines runs every iteration from the base model; set "
                             "evaluation.patience to null and training.continue_from_previous to false")
        return self

    def ablation(self) -> RunConfig:
        """The same run without rationalization (the paper's ablation)."""
        r = self.rationalization.model_copy(update={"p_rationalization": 0.0})
        return self.model_copy(update={"rationalization": r})

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        """The configuration a step was given; its storage settings become the default for the step's reads
        and writes of s3:// and gs:// locations."""
        config = cls.model_validate_json(text)
        configure_storage(config.storage)
        return config


def describe_validation_error(e: ValidationError, source: str) -> str:
    """One sentence per problem, naming the key to fix."""
    parts = []
    for err in e.errors():
        key = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-after")) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "is not a known setting (check the spelling)"
        elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict | list):
            # a section is not echoed: it is long, and may hold what must never be logged (a credential)
            msg = f"{msg} (got {err['input']!r})"
        parts.append(f"{key}: {msg}")
    return f"{source} is not a valid run configuration: " + "; ".join(parts) + "."


DEMO_CONFIG = Path(__file__).with_name("demo.yaml")  # what `star run` runs without a config file


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run configuration (None: the built-in arithmetic demo) and apply `key.path=value` overrides."""
    data: dict = {}
    source = "the default configuration"
    if path is None:
        path = DEMO_CONFIG
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.exists():
            raise StarError(f"Config file {p} does not exist; pass the path of a YAML run configuration.")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise StarError(f"{p} is not valid YAML: {e}.") from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise StarError(f"{p} must hold a mapping of settings at the top level.")
        data = loaded
    for item in overrides or []:
        if "=" not in item:
            raise StarError(f"--set {item!r} must look like key.path=value.")
        key, raw = item.split("=", 1)
        target = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise StarError(f"--set {item!r}: {part} is not a section.")
        target[parts[-1]] = yaml.safe_load(raw)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise StarError(describe_validation_error(e, source)) from e
