"""What each step is given: the sections of the run configuration it reads, and nothing else. The DAG passes
each as one small JSON parameter, so a step's cache key changes only when something it reads changes, and no
pod carries the whole configuration."""

from __future__ import annotations

from typing import Self

from pydantic import Field, ValidationError

from components.core.errors import StarError
from components.core.strict import Strict
from components.core.validation import describe_problems
from components.demo.seed_pretraining import SeedPretraining
from components.generation.sampling import MAX_TEMPERATURE
from components.settings.sections import (
    EvaluationConfig,
    GenerationConfig,
    ModelConfig,
    RationalizationConfig,
)
from components.storage import StorageConfig
from components.storage import configure as configure_storage
from components.tasks import TaskConfig
from components.training.config import TrainingConfig
from components.training.trainjob import JobSettings


class StepSettings(Strict):
    """Settings one step reads. `storage`: how the step reaches s3:// and gs:// locations."""

    storage: StorageConfig = Field(default_factory=StorageConfig)

    @classmethod
    def load(cls, text: str) -> Self:
        """The settings a step was given; their storage settings become the default for the step's reads and
        writes of s3:// and gs:// locations."""
        try:
            settings = cls.model_validate_json(text)
        except ValidationError as e:
            raise StarError(f"The {cls.__name__} given to this step are not valid: "
                            f"{describe_problems(e, default='(top level)')}; compile the pipeline again with "
                            "`star compile`.") from e
        configure_storage(settings.storage)
        return settings


class PrepareDataSettings(StepSettings):
    task: TaskConfig


class PrepareModelSettings(StepSettings):
    model: ModelConfig


class GenerateSettings(StepSettings):
    """Generation and rationalization of one shard of the training questions."""

    seed: int
    task: TaskConfig
    generation: GenerationConfig
    rationalization: RationalizationConfig


class FinetuneSetSettings(StepSettings):
    max_per_question: int = Field(1, ge=1)


class TrainSettings(StepSettings):
    #: The run's name: checkpoints of iteration n live under `training.checkpoints/<run_name>/`.
    run_name: str
    seed: int
    training: TrainingConfig
    #: Multi-node training (`training.distributed.nodes > 1`): the job's image, pods and Secrets, resolved from
    #: the cluster configuration when the pipeline is compiled.
    job: JobSettings | None = None


class EvaluateSettings(StepSettings):
    seed: int
    task: TaskConfig
    generation: GenerationConfig
    #: Samples per held-out question (maj@k, pass@k), their temperature, and the samples shown in the report.
    num_samples: int = Field(1, ge=1)
    temperature: float = Field(0.7, gt=0.0, le=MAX_TEMPERATURE)
    report_samples: int = Field(3, ge=0)

    @classmethod
    def of(cls, seed: int, task: TaskConfig, generation: GenerationConfig, evaluation: EvaluationConfig,
           storage: StorageConfig) -> EvaluateSettings:
        return cls(seed=seed, task=task, generation=generation, num_samples=evaluation.num_samples,
                   temperature=evaluation.temperature, report_samples=evaluation.report_samples, storage=storage)


class GateSettings(StepSettings):
    #: Stop when held-out accuracy has not improved for this many iterations.
    patience: int = Field(ge=1)


class ReportSettings(StepSettings):
    run_name: str
    task_name: str
    iterations: int
    patience: int | None = None
    #: Identifies the whole run configuration (a local run finds the reports of its own configuration by it).
    config_digest: str


class SeedSetSettings(StepSettings):
    #: The recipe the built-in base model was pre-trained with: the control replays its seed set.
    recipe: SeedPretraining


class PublishSettings(StepSettings):
    #: Each finished iteration n is copied to `<url>/iteration-<n>/` (model and history, manifest last).
    url: str


class StartSettings(StepSettings):
    #: The publish location of the earlier run, and the iteration whose model and history this run starts from.
    url: str
    iteration: int = Field(ge=1)
