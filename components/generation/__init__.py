"""Generation backends: `hf` (transformers, CPU or GPU) and `vllm` (vLLM: GPU, or its CPU build), with one
`generate` interface."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from components.generation.vllm import VLLMConfig


def load_generator(
    backend: Literal["hf", "vllm"], base_dir: str | Path, model_dir: str | Path, *, batch_size: int,
    vllm: VLLMConfig | None = None,
) -> Any:
    """An iteration's model (the base model, a LoRA adapter on it, or a full fine-tuned model) behind a backend."""
    if backend == "vllm":
        from components.generation.vllm import VLLMConfig, VLLMGenerator

        return VLLMGenerator.from_model_dirs(base_dir, model_dir, vllm or VLLMConfig())
    from components.generation.hf import HFGenerator
    from components.models.loading import load_model

    model, tok = load_model(base_dir, model_dir)
    return HFGenerator(model, tok, batch_size=batch_size)
