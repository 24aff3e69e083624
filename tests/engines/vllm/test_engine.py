"""The `vllm` backend on vLLM's real engine (CPU build) against the `hf` backend, on the demo's base model and
questions: the same greedy tokens, `n` samples, seeds, stop strings, prefix caching, the checkpoint's dtype."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from components.core.seeds import Stage, chunk_seed, generation_seed
from components.generation.sampling import SamplingConfig
from components.generation.vllm import VLLMConfig, VLLMGenerator
from components.tasks import ArithmeticConfig, ArithmeticTask, make_task
from pipelines.config import load_config

#: On this 2-core machine one thread is the fastest for the tiny model (see the Makefile's VLLM_CPU_ENV).
CPU = VLLMConfig(cpu_threads=1)


@pytest.fixture(scope="module")
def engine(demo_model: Path) -> Iterator[VLLMGenerator]:
    gen = VLLMGenerator(str(demo_model), CPU)
    yield gen
    del gen


@pytest.fixture(scope="module")
def demo_questions() -> tuple[ArithmeticTask, list[str]]:
    """The first questions of the demo's training split (1-5 digits), as the demo's generate step asks them."""
    task = make_task(load_config(None).task)
    assert isinstance(task, ArithmeticTask)
    return task, [task.question(e, hint=False, direct=False) for e in task.load("train")[:96]]


def test_greedy_tokens_match_the_hf_backend(engine: VLLMGenerator, hf_base, demo_questions) -> None:
    task, questions = demo_questions
    greedy = SamplingConfig(max_new_tokens=200)
    ours = engine.generate("", questions, greedy, task.stop)
    assert ours == hf_base.generate("", questions, greedy, task.stop)
    # the demo's base model works 1-3-digit sums: the comparison is of real scratchpads, not of empty strings
    assert sum(task.is_correct(task.extract_answer(o[0], direct=False), e.answer)
               for o, e in zip(ours, task.load("train")[:96], strict=True)) >= 40


def test_greedy_with_several_samples_repeats_the_one_completion(engine: VLLMGenerator, hf_base,
                                                               demo_questions) -> None:
    """vLLM refuses n > 1 with greedy decoding; the backend asks for one completion and repeats it, as hf's
    copies are."""
    task, questions = demo_questions
    greedy3 = SamplingConfig(num_samples=3, max_new_tokens=200)
    ours = engine.generate("", questions[:16], greedy3, task.stop)
    assert ours == hf_base.generate("", questions[:16], greedy3, task.stop)
    assert all(len(o) == 3 and len(set(o)) == 1 for o in ours)


def test_few_shot_prefix_is_cached_and_changes_nothing(engine: VLLMGenerator, hf_base) -> None:
    task = ArithmeticTask(ArithmeticConfig(min_digits=1, max_digits=3, train_size=32, few_shot_digits=[2, 3, 2]))
    prefix = task.prefix(hint=False, direct=False)
    questions = [task.question(e, hint=False, direct=False) for e in task.load("train")]
    greedy = SamplingConfig(max_new_tokens=120)
    ours = engine.generate(prefix, questions, greedy, task.stop)
    assert ours == hf_base.generate(prefix, questions, greedy, task.stop)
    # every prompt starts with the same prefix tokens, so a later request finds the prefix's KV blocks cached
    prefix_ids = engine._encode(prefix)
    block = engine.llm.llm_engine.vllm_config.cache_config.block_size
    assert len(prefix_ids) >= 2 * block
    from vllm import SamplingParams

    again = engine.llm.generate([{"prompt_token_ids": prefix_ids + engine._encode(questions[0])}],
                                SamplingParams(max_tokens=1), use_tqdm=False)
    assert again[0].num_cached_tokens >= len(prefix_ids) // block * block


def test_stop_strings_end_the_completion_as_in_hf(engine: VLLMGenerator, hf_base, demo_questions) -> None:
    task, questions = demo_questions
    stop = ["C: 1", "</scratch>"]
    greedy = SamplingConfig(max_new_tokens=200)
    ours = engine.generate("", questions[:48], greedy, stop)
    assert ours == hf_base.generate("", questions[:48], greedy, stop)
    assert all("C: 1" not in o[0] and "</scratch>" not in o[0] for o in ours)
    assert any(o[0] != f[0] for o, f in zip(ours, engine.generate("", questions[:48], greedy, task.stop),
                                            strict=True))  # the stop strings cut something


def test_samples_are_seeded_per_call_and_differ_within_a_question(engine: VLLMGenerator, demo_questions) -> None:
    task, questions = demo_questions
    sampling = SamplingConfig(num_samples=4, temperature=1.0, max_new_tokens=60, seed=11)
    first = engine.generate("", questions[:24], sampling, task.stop)
    assert all(len(o) == 4 for o in first)
    assert engine.generate("", questions[:24], sampling, task.stop) == first  # same seed: same samples
    assert any(len(set(o)) > 1 for o in first)  # the n samples of a question draw from different streams
    other = engine.generate("", questions[:24], sampling.model_copy(update={"seed": 12}), task.stop)
    assert other != first


def test_large_run_seeds_reach_the_engine(engine: VLLMGenerator, demo_questions) -> None:
    """The sampling seeds derived from a run seed of 2**40 were above 2**64 and overflowed the engine's
    generators; they now wrap into its range."""
    task, questions = demo_questions
    seed = chunk_seed(generation_seed(2**40, 3, Stage.GENERATION, 1), 2)
    sampling = SamplingConfig(num_samples=2, temperature=0.7, max_new_tokens=40, seed=seed)
    out = engine.generate("", questions[:8], sampling, task.stop)
    assert out == engine.generate("", questions[:8], sampling, task.stop) and all(len(o) == 2 for o in out)


def test_temperature_two_is_the_limit(engine: VLLMGenerator, demo_questions) -> None:
    task, questions = demo_questions
    out = engine.generate("", questions[:4], SamplingConfig(temperature=2.0, max_new_tokens=20), task.stop)
    assert len(out) == 4
    with pytest.raises(ValidationError, match="less than or equal to 2"):
        SamplingConfig(temperature=2.5)


def test_auto_dtype_is_the_checkpoints(engine: VLLMGenerator) -> None:
    """The demo's checkpoint is float32, and the hf backend computes in float32; vLLM's own `auto` picks
    bfloat16 on this CPU."""
    assert engine.llm.llm_engine.model_config.dtype == torch.float32
    assert engine.llm.llm_engine.model_config.enforce_eager is True  # default without a GPU: no torch.compile
