"""Generation backends: `hf` (transformers, CPU or GPU) and `vllm` (GPU), with one `generate` interface."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.config import GenerationConfig


def load_generator(gen: GenerationConfig, base_dir: str | Path, policy_dir: str | Path) -> Any:
    """The iteration's model behind the configured backend (base model, LoRA adapter on it, or checkpoint)."""
    if gen.backend == "vllm":
        from components.backends.vllm import VLLMGenerator

        return VLLMGenerator.from_policy(base_dir, policy_dir, gen.vllm)
    from components.backends.hf import HFGenerator
    from components.policy import load_policy

    model, tok = load_policy(base_dir, policy_dir)
    return HFGenerator(model, tok, batch_size=gen.batch_size)
