"""Generation with vLLM on GPU: the same `generate()` as the `hf` backend, on vLLM's offline `LLM` engine.

- One engine per step (`vllm.LLM`), tensor parallel over the GPUs of the pod (`tensor_parallel_size`, default:
  every GPU the pod sees), automatic prefix caching on, so the few-shot prefix every prompt starts with is
  computed once and its KV blocks are shared.
- The iteration's LoRA adapter is served as it is, through a `LoRARequest` (`enable_lora=True`), never merged
  into the base weights; a full fine-tuned checkpoint is loaded as the model itself.
- Prompts are token ids, `prefix + question` encoded piece by piece without special tokens, exactly as the
  `hf` backend and the fine-tuning code encode them, so both backends see the very same tokens.
- `SamplingParams(n=num_samples, ...)` draws all samples of a question in one request; each question gets its
  own seed range, so runs are reproducible and questions do not share random draws.

vLLM is imported only inside `VLLMGenerator`; the functions that build its arguments are plain Python, so the
CPU machine (and the tests) never need it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from components.core.devices import visible_gpus
from components.core.errors import StarError
from components.core.progress import ProgressLine
from components.core.seeds import question_seed
from components.generation.sampling import SamplingConfig, cut_at_stop

#: The LoRA ranks vLLM's engine accepts for `max_lora_rank` (vllm.config.lora.MaxLoRARanks).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class VLLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: GPUs one engine spans (None: every GPU visible to the pod).
    tensor_parallel_size: int | None = Field(None, ge=1)
    #: Share of each GPU's memory vLLM may take for weights, activations and KV cache.
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    #: Longest prompt + generation in tokens (None: the model's own limit).
    max_model_len: int | None = Field(None, ge=16)
    #: Share the KV cache of common prompt prefixes (the few-shot prompt) across requests.
    enable_prefix_caching: bool = True
    #: Largest LoRA rank the engine reserves memory for (None: the smallest vLLM rank that fits the adapter).
    max_lora_rank: Literal[1, 8, 16, 32, 64, 128, 256, 320, 512] | None = None
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    #: Engine seed (sampling seeds come from the step, per question).
    seed: int = 0


def lora_rank_of(adapter_dir: str | Path) -> int:
    """The rank `r` of a saved peft LoRA adapter."""
    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    rank = int(config.get("r", 0))
    ranks = [int(v) for v in (config.get("rank_pattern") or {}).values()]
    return max([rank, *ranks])


def engine_lora_rank(adapter_rank: int, configured: int | None) -> int:
    """`max_lora_rank` for the engine: the configured one (checked against the adapter) or the smallest rank
    vLLM supports that holds the adapter."""
    if configured is not None:
        if configured < adapter_rank:
            raise StarError(
                f"The LoRA adapter has rank {adapter_rank} but generation.vllm.max_lora_rank is {configured}; "
                f"raise it to at least {adapter_rank}."
            )
        return configured
    for rank in VLLM_LORA_RANKS:
        if rank >= adapter_rank:
            return rank
    raise StarError(
        f"vLLM serves LoRA adapters up to rank {VLLM_LORA_RANKS[-1]}; training.lora_r is {adapter_rank}."
    )


def llm_kwargs(
    model: str, config: VLLMConfig, *, adapter_rank: int | None = None, gpus: int | None = None
) -> dict[str, Any]:
    """Arguments of `vllm.LLM(...)`. `adapter_rank` set: LoRA serving on; `gpus`: what the pod sees (for the
    default tensor parallel size)."""
    tp = config.tensor_parallel_size
    if tp is None:
        tp = max(1, visible_gpus() if gpus is None else gpus)
    kwargs: dict[str, Any] = {
        "model": model,
        "tensor_parallel_size": tp,
        "dtype": config.dtype,
        "seed": config.seed,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "enable_prefix_caching": config.enable_prefix_caching,
    }
    if config.max_model_len is not None:
        kwargs["max_model_len"] = config.max_model_len
    if adapter_rank is not None:
        kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=engine_lora_rank(adapter_rank,
                                                                                   config.max_lora_rank))
    return kwargs


def sampling_kwargs(sampling: SamplingConfig, stop: Sequence[str], question_index: int = 0) -> dict[str, Any]:
    """Arguments of `vllm.SamplingParams(...)` for one question: `n` samples, the task's stop strings (vLLM
    leaves them out of the returned text), and a seed range of its own."""
    n = sampling.num_samples
    return {
        "n": n,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_new_tokens,
        "stop": [s for s in stop if s],
        "seed": question_seed(sampling.seed, question_index, n),
    }


def lora_request_args(adapter_dir: str | Path) -> dict[str, Any]:
    """Arguments of `vllm.lora.request.LoRARequest(...)` for the iteration's adapter (one adapter per engine,
    so its integer id is 1)."""
    path = Path(adapter_dir).resolve()
    return {"lora_name": f"star-{path.name}", "lora_int_id": 1, "lora_path": str(path)}


class VLLMGenerator:
    """`generate(prefix, questions, sampling, stop, label)` on a vLLM engine (one per step)."""

    def __init__(
        self,
        model: str,
        config: VLLMConfig | None = None,
        *,
        adapter_dir: str | Path | None = None,
        chunk_size: int = 1024,
    ) -> None:
        from vllm import LLM

        self.config = config or VLLMConfig()
        self.chunk_size = max(1, chunk_size)
        rank = lora_rank_of(adapter_dir) if adapter_dir is not None else None
        self.llm = LLM(**llm_kwargs(model, self.config, adapter_rank=rank))
        self.lora_request = None
        if adapter_dir is not None:
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest(**lora_request_args(adapter_dir))
        self.tok = self.llm.get_tokenizer()

    @classmethod
    def from_model_dirs(
        cls, base_dir: str | Path, model_dir: str | Path, config: VLLMConfig | None = None, chunk_size: int = 1024
    ) -> VLLMGenerator:
        """The iteration's model, as `components.models.loading.load_model` reads it: the base model artifact
        itself, a LoRA adapter on the base model, or a full fine-tuned model."""
        from components.models.loading import is_adapter, model_source

        if is_adapter(model_dir):
            return cls(model_source(base_dir), config, adapter_dir=model_dir, chunk_size=chunk_size)
        return cls(model_source(model_dir), config, chunk_size=chunk_size)

    def _encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False)) if text else []

    def generate(
        self,
        prefix: str,
        questions: Sequence[str],
        sampling: SamplingConfig,
        stop: Sequence[str],
        label: str = "generate",
    ) -> list[list[str]]:
        """For each question, `sampling.num_samples` completions (prompt = prefix + question)."""
        from vllm import SamplingParams

        prefix_ids = self._encode(prefix)
        results: list[list[str]] = []
        bar = ProgressLine(label, len(questions), unit="q")
        for start in range(0, len(questions), self.chunk_size):
            chunk = questions[start : start + self.chunk_size]
            prompts = [{"prompt_token_ids": prefix_ids + self._encode(q)} for q in chunk]
            params = [SamplingParams(**sampling_kwargs(sampling, stop, start + i)) for i in range(len(chunk))]
            outputs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=self.lora_request)
            if len(outputs) != len(chunk):
                raise RuntimeError(f"vLLM returned {len(outputs)} results for {len(chunk)} prompts")
            for out in outputs:
                results.append([cut_at_stop(c.text, stop) for c in out.outputs])
            bar.update(len(chunk))
        return results
