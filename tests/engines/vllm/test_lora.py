"""A LoRA adapter made by our train step, served by vLLM's real engine through a `LoRARequest`: the same greedy
tokens as the `hf` backend running base + adapter through peft."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.core.rows import TrainExample
from components.generation import load_generator
from components.generation.sampling import SamplingConfig
from components.generation.vllm import VLLMConfig, VLLMGenerator
from components.settings.steps import TrainSettings
from components.tasks import ArithmeticConfig, ArithmeticTask
from components.train import train_in_process
from components.training.config import TrainingConfig


@pytest.fixture(scope="module")
def adapter(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Iteration 1's model as the train step writes it: a rank-8 LoRA adapter, 40 steps on worked 4-digit sums
    (the base model fails them), enough to change what the model writes."""
    task = ArithmeticTask(ArithmeticConfig(min_digits=4, max_digits=4, train_size=160, seed=5))
    examples = [TrainExample(id=e.id, source="generation", prompt=task.question(e, hint=False, direct=False),
                             completion=task.target(e, direct=False) + "\n") for e in task.load("train")]
    settings = TrainSettings(run_name="vllm-lora", seed=0, training=TrainingConfig(
        method="lora", lora_r=8, lora_alpha=16, learning_rate=3e-3, batch_size=8, checkpoint_every=0))
    out = tmp_path_factory.mktemp("iteration-1") / "model"
    train_in_process(settings, 1, examples, 40, None, str(demo_model), str(demo_model), out)
    assert (out / "adapter_config.json").exists()
    return out


def test_adapter_greedy_tokens_match_the_hf_backend(demo_model: Path, adapter: Path, hf_base) -> None:
    task = ArithmeticTask(ArithmeticConfig(min_digits=1, max_digits=5, train_size=64, seed=9))
    questions = [task.question(e, hint=False, direct=False) for e in task.load("train")]
    greedy = SamplingConfig(max_new_tokens=200)

    engine = VLLMGenerator.from_model_dirs(demo_model, adapter, VLLMConfig(cpu_threads=1))
    assert engine.lora_request is not None and engine.llm.llm_engine.vllm_config.lora_config.max_lora_rank == 8
    ours = engine.generate("", questions, greedy, task.stop)
    hf_adapter = load_generator("hf", demo_model, adapter, batch_size=64)
    assert ours == hf_adapter.generate("", questions, greedy, task.stop)
    # the adapter is applied (served unmerged): iteration 1's model writes other scratchpads than the base model
    assert ours != hf_base.generate("", questions, greedy, task.stop)
