"""The run configuration: one YAML file, validated by these models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from components.core.errors import StarError
from components.core.strict import Strict
from components.demo.builtin import BUILTIN_TINY
from components.settings.sections import (
    EvaluationConfig,
    GenerationConfig,
    ModelConfig,
    RationalizationConfig,
)
from components.settings.steps import (
    EvaluateSettings,
    FinetuneSetSettings,
    GateSettings,
    GenerateSettings,
    PrepareDataSettings,
    PrepareModelSettings,
    PublishSettings,
    ReportSettings,
    SeedSetSettings,
    StartSettings,
    TrainSettings,
)
from components.storage import StorageConfig
from components.tasks import ArithmeticConfig, TaskConfig
from components.training.config import TrainingConfig
from pipelines.placement import ClusterConfig, job_settings


class StartConfig(Strict):
    """Where a run starts. A new run starts at iteration 1 from the base model; a run that continues an earlier
    one (a long run split into a chain of runs, or a failed cluster run resumed) starts at iteration k from the
    model and history that run published for iteration k-1."""

    #: The first iteration this run trains (1: a new run).
    iteration: int = Field(1, ge=1)
    #: The `publish` location of the earlier run (needed when `iteration` is above 1).
    from_url: str | None = None


class RunConfig(Strict):
    name: str = Field("star", pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
    #: Every random draw of the run derives from it (components/core/seeds.py). Below 2**31: training hands
    #: `seed + iteration` to numpy, which takes seeds below 2**32 only.
    seed: int = Field(0, ge=0, lt=2**31)
    #: The last iteration (a new run trains iterations 1..iterations).
    iterations: int = Field(3, ge=1, le=256)
    task: TaskConfig = Field(default_factory=ArithmeticConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    rationalization: RationalizationConfig = Field(default_factory=RationalizationConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    #: Generation (and rationalization) fan out over this many shards, one pod each on a cluster.
    num_shards: int = Field(1, ge=1, le=1024)
    #: Copy each finished iteration's model and history to `<publish>/iteration-<n>/` (a folder, s3:// or
    #: gs://), so that a later run can start from them (`start`).
    publish: str | None = None
    start: StartConfig = Field(default_factory=StartConfig)
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
        if self.start.iteration > 1 or self.publish:
            raise ValueError("evaluation.baselines runs every arm from iteration 1 in one run; set start.iteration "
                             "to 1 and publish to null")
        return self

    @model_validator(mode="after")
    def _start_needs_an_earlier_run(self) -> RunConfig:
        if self.start.iteration > self.iterations:
            raise ValueError(f"start.iteration {self.start.iteration} is past the last iteration ({self.iterations})"
                             "; raise iterations")
        if self.start.iteration > 1 and not self.start.from_url:
            raise ValueError("start.iteration above 1 needs start.from_url: the publish location of the run whose "
                             f"iteration {self.start.iteration - 1} this run continues")
        return self

    def to_json(self) -> str:
        return self.model_dump_json()

    # The settings each step reads (one small JSON parameter per step; see components/settings/steps.py).

    def prepare_data_settings(self) -> PrepareDataSettings:
        return PrepareDataSettings(task=self.task, storage=self.storage)

    def prepare_model_settings(self) -> PrepareModelSettings:
        return PrepareModelSettings(model=self.model, storage=self.storage)

    def generate_settings(self, rationalize: bool = True) -> GenerateSettings:
        """`rationalize=False`: the ablation without rationalization (p_rationalization 0)."""
        r = self.rationalization if rationalize else self.rationalization.model_copy(update={"p_rationalization": 0.0})
        return GenerateSettings(seed=self.seed, task=self.task, generation=self.generation, rationalization=r,
                                storage=self.storage)

    def finetune_set_settings(self) -> FinetuneSetSettings:
        return FinetuneSetSettings(max_per_question=self.generation.max_per_question, storage=self.storage)

    def train_settings(self) -> TrainSettings:
        job = job_settings(self.cluster, self.training.distributed, self.name)
        return TrainSettings(run_name=self.name, seed=self.seed, training=self.training, job=job,
                             storage=self.storage)

    def evaluate_settings(self) -> EvaluateSettings:
        return EvaluateSettings.of(self.seed, self.task, self.generation, self.evaluation, self.storage)

    def gate_settings(self) -> GateSettings | None:
        patience = self.evaluation.patience
        return GateSettings(patience=patience, storage=self.storage) if patience is not None else None

    def report_settings(self) -> ReportSettings:
        return ReportSettings(run_name=self.name, task_name=self.task.name, iterations=self.iterations,
                              patience=self.evaluation.patience, config_digest=config_digest(self.to_json()),
                              storage=self.storage)

    def seed_set_settings(self) -> SeedSetSettings:
        return SeedSetSettings(recipe=self.model.builtin, storage=self.storage)

    def publish_settings(self) -> PublishSettings | None:
        return PublishSettings(url=self.publish, storage=self.storage) if self.publish else None

    def start_settings(self) -> StartSettings:
        assert self.start.from_url is not None
        return StartSettings(url=self.start.from_url, iteration=self.start.iteration - 1, storage=self.storage)


def config_digest(config_json: str) -> str:
    """Identifies the configuration a report was made from (a local run finds its own reports by it)."""
    return hashlib.sha256(config_json.encode()).hexdigest()


def describe_validation_error(e: ValidationError, source: str) -> str:
    """One sentence per problem, naming the key to fix."""
    from components.core.validation import describe_problems

    problems = describe_problems(e, default="(top level)", unknown="is not a known setting (check the spelling)")
    return f"{source} is not a valid run configuration: {problems}."


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


def continue_from(config: RunConfig, url: str, iteration: int | None = None) -> RunConfig:
    """`config` set to continue the run published at `url`: at `iteration`, or after its last published iteration.
    Its own `publish` defaults to the same folder, so a chain of runs keeps publishing where it reads."""
    from components.published import published_iterations, require_iteration
    from components.storage import configure

    configure(config.storage)
    if iteration is None:
        have = published_iterations(url, config.storage)
        if not have:
            raise StarError(f"{url} holds no published iteration; give the `publish` folder of the run to continue.")
        iteration = have[-1] + 1
    require_iteration(url, iteration - 1, config.storage)
    start = iteration
    if start > config.iterations:
        raise StarError(f"The run at {url} has finished iteration {start - 1}; raise iterations above "
                        f"{config.iterations} to go on.")
    data = config.model_dump(mode="json")
    data["start"] = {"iteration": start, "from_url": url}
    data["publish"] = data.get("publish") or url
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise StarError(describe_validation_error(e, "the configuration to continue with")) from e
