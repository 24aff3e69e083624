"""What every generation backend shares: the sampling settings' limits and the seeds handed to a sampler."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from components.core.seeds import Stage, batch_seed, chunk_seed, evaluation_seed, generation_seed, question_seed
from components.generation.sampling import SamplingConfig
from components.settings.sections import EvaluationConfig, GenerationConfig
from pipelines.config import load_config


@pytest.mark.parametrize("make", [lambda t: SamplingConfig(temperature=t), lambda t: GenerationConfig(temperature=t),
                                  lambda t: EvaluationConfig(temperature=t)])
def test_temperatures_above_two_are_refused(make) -> None:
    """vLLM refuses temperatures above 2; both backends take the same settings, so the schema does."""
    make(2.0)
    with pytest.raises(ValidationError, match="less than or equal to 2"):
        make(2.01)


def test_a_temperature_above_two_in_a_run_configuration_names_the_key() -> None:
    from components.core.errors import StarError

    with pytest.raises(StarError, match=r"generation\.temperature.*2"):
        load_config(None, ["generation.temperature=3"])


def _sampling_seeds(run_seed: int) -> list[int]:
    """The seeds a run hands its samplers: generation and rationalization of shards and chunks, evaluation."""
    steps = [chunk_seed(generation_seed(run_seed, it, stage, shard), k)
             for it in (1, 2, 5) for stage in Stage for shard in (0, 3) for k in (0, 2)]
    steps += [evaluation_seed(run_seed, it) for it in (0, 1, 5)]
    return [f(s, i) for s in steps for f in (batch_seed, lambda s, i: question_seed(s, i, 4)) for i in (0, 7, 4095)]


def _unbounded(run_seed: int) -> list[int]:
    """The same seeds as they were derived before they were bounded (seed * 1_000_003 + offset)."""
    steps = [generation_seed(run_seed, it, stage, shard) + k * 1_000_003
             for it in (1, 2, 5) for stage in Stage for shard in (0, 3) for k in (0, 2)]
    steps += [evaluation_seed(run_seed, it) for it in (0, 1, 5)]
    batches = [s * 1_000_003 + b for s in steps for b in (0, 7, 4095)]
    questions = [s * 1_000_003 + q * 4 for s in steps for q in (0, 7, 4095)]
    return [v for k in range(len(steps)) for v in batches[3 * k : 3 * k + 3] + questions[3 * k : 3 * k + 3]]


@pytest.mark.parametrize("run_seed", [0, 1, 2, 42, 12345, 10**6])
def test_ordinary_run_seeds_keep_their_sampling_seeds(run_seed: int) -> None:
    """Bounding the seeds changed none a run seed up to a million gives, so earlier runs draw what they drew."""
    assert _sampling_seeds(run_seed) == _unbounded(run_seed)


@pytest.mark.parametrize("run_seed", [2**32 - 1, 2**40, 2**63, 10**40])
def test_large_run_seeds_give_sampler_seeds(run_seed: int) -> None:
    """Derived as seed * 1_000_003 + offset they overflowed vLLM's int64 and torch's generators; now every one is
    a seed torch takes (tests/engines/vllm hands them to vLLM's engine)."""
    seeds = _sampling_seeds(run_seed)
    assert all(0 <= s < 2**63 for s in seeds)
    for s in seeds[:4]:
        torch.Generator().manual_seed(s)
    assert len(set(seeds)) > len(seeds) // 3  # still distinct streams
