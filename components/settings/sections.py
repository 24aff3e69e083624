"""The sections of a run configuration that steps read. `pipelines.config.RunConfig` puts them together with
the run-wide and cluster-only settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.core.strict import Strict
from components.demo.builtin import BUILTIN_TINY
from components.demo.seed_pretraining import SeedPretraining
from components.generation.sampling import MAX_TEMPERATURE, SamplingConfig
from components.generation.vllm import VLLMConfig


class ModelConfig(Strict):
    #: A Hugging Face model ID, a local `save_pretrained` folder, `builtin:tiny-arithmetic` (the demo's tiny
    #: model, pre-trained locally on a seed set and cached) or `builtin:tiny-untrained` (random weights, for
    #: CPU smoke runs of any task).
    base: str = BUILTIN_TINY
    builtin: SeedPretraining = Field(default_factory=SeedPretraining)
    #: Where built-in base models are cached (default: ~/.cache/star/models).
    cache_dir: str | None = None


class GenerationConfig(Strict):
    #: `hf` (transformers, CPU or GPU) or `vllm` (offline engine, LoRA adapters served without merging; GPU on a
    #: cluster, vLLM's CPU build on a machine without one: `make demo-vllm`).
    backend: Literal["hf", "vllm"] = "hf"
    vllm: VLLMConfig = Field(default_factory=VLLMConfig)
    batch_size: int = Field(32, ge=1)
    max_new_tokens: int = Field(256, ge=1)
    num_samples: int = Field(1, ge=1)
    #: 0: greedy (with num_samples > 1, each question gets that many copies of its one greedy completion).
    temperature: float = Field(0.0, ge=0.0, le=MAX_TEMPERATURE)
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

    def uses_few_shot(self, iteration: int) -> bool:
        """The few-shot prefix is always used by the base model; `no_prompt` drops it after iteration 1."""
        return not (self.no_prompt and iteration > 1)


class RationalizationConfig(Strict):
    #: Each question the model got wrong is rationalized with this probability (0 disables rationalization).
    p_rationalization: float = Field(1.0, ge=0.0, le=1.0)
    #: Share of rationalized examples saved *with* the hint in their prompt (the paper: 0).
    p_show_hint_save: float = Field(0.0, ge=0.0, le=1.0)


class EvaluationConfig(Strict):
    #: Sample rationales per iteration shown in the report.
    report_samples: int = Field(3, ge=0)
    #: Besides greedy accuracy: this many samples per held-out question for maj@k and pass@k (1: greedy only).
    num_samples: int = Field(1, ge=1)
    temperature: float = Field(0.7, gt=0.0, le=MAX_TEMPERATURE)
    #: Stop early when held-out accuracy has not improved for this many iterations (None: never).
    patience: int | None = Field(None, ge=1)
    #: Also run, beside STaR, the ablation without rationalization (p_rationalization 0) and a control that
    #: trains the base model on its seed set for as many steps as STaR trains; the report plots all three.
    baselines: bool = False
