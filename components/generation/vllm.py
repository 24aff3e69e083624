"""Generation with vLLM: the same `generate()` as the `hf` backend, on vLLM's offline `LLM` engine (GPU on a
cluster; vLLM's CPU build runs it on this machine, in tests and `make demo-vllm`).

- One engine per step (`vllm.LLM`), tensor parallel over the GPUs of the pod (`tensor_parallel_size`, default:
  the most GPUs of the pod that divide the model's attention heads), automatic prefix caching on, so the
  few-shot prefix every prompt starts with is computed once and its KV blocks are shared.
- `dtype: auto` is the checkpoint's own dtype, as the `hf` backend loads it (vLLM's own `auto` runs a float32
  checkpoint in bfloat16 or float16, so both backends would not compute the same tokens).
- The iteration's LoRA adapter is served as it is, through a `LoRARequest` (`enable_lora=True`), never merged
  into the base weights; a full fine-tuned checkpoint is loaded as the model itself.
- Prompts are token ids, `prefix + question` encoded piece by piece without special tokens, exactly as the
  `hf` backend and the fine-tuning code encode them, so both backends see the very same tokens.
- `SamplingParams(n=num_samples, ...)` draws all samples of a question in one request; each question gets its
  own seed range, so runs are reproducible and questions do not share random draws. Greedy decoding (temperature
  0) asks vLLM for one completion (it refuses `n > 1` there) and repeats it, as the `hf` backend's copies are.

vLLM is imported only inside `VLLMGenerator`; the functions that build its arguments are plain Python, so the
main environment (and its tests) never need it. `tests/engines/vllm/` runs the generator on the real engine.
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

    #: GPUs one engine spans (None: the most GPUs visible to the pod that divide the model's attention heads).
    tensor_parallel_size: int | None = Field(None, ge=1)
    #: Share of each GPU's memory vLLM may take for weights, activations and KV cache.
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    #: Longest prompt + generation in tokens (None: the model's own limit).
    max_model_len: int | None = Field(None, ge=16)
    #: Share the KV cache of common prompt prefixes (the few-shot prompt) across requests.
    enable_prefix_caching: bool = True
    #: Largest LoRA rank the engine reserves memory for (None: the smallest vLLM rank that fits the adapter).
    max_lora_rank: Literal[1, 8, 16, 32, 64, 128, 256, 320, 512] | None = None
    #: `auto`: the checkpoint's dtype (what the `hf` backend computes in).
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    #: Engine seed (sampling seeds come from the step, per question).
    seed: int = Field(0, ge=0, lt=2**63)
    #: Run the model eagerly: no torch.compile, no CUDA graphs (None: on without a GPU, where compiling takes
    #: 15-45 s of a short step and there are no CUDA graphs; off on GPUs).
    enforce_eager: bool | None = None
    #: Threads torch computes with in a CPU engine (no GPU visible; None: torch's default). One is fastest for
    #: small models on a few shared cores.
    cpu_threads: int | None = Field(None, ge=1)


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


class ModelShape(BaseModel):
    """What the engine's arguments depend on in a checkpoint's `config.json`."""

    attention_heads: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    #: The dtype the weights are stored in (None: not stated).
    dtype: Literal["bfloat16", "float16", "float32"] | None = None

    @classmethod
    def of(cls, config: dict[str, Any]) -> ModelShape:
        """From a `config.json` (a multimodal model's text part under `text_config`)."""
        text = config.get("text_config") or config
        heads = int(text["num_attention_heads"])
        dtype = text.get("dtype") or text.get("torch_dtype") or config.get("dtype") or config.get("torch_dtype")
        return cls(attention_heads=heads, kv_heads=int(text.get("num_key_value_heads") or heads),
                   dtype=dtype if dtype in ("bfloat16", "float16", "float32") else None)


def _splits_heads(tp: int, shape: ModelShape) -> bool:
    """vLLM shards attention heads evenly over the GPUs; KV heads are split, or replicated when there are fewer."""
    kv = shape.kv_heads
    return shape.attention_heads % tp == 0 and (kv % tp == 0 or tp % kv == 0)


def tensor_parallel_size(config: VLLMConfig, shape: ModelShape, gpus: int) -> int:
    """The configured size (checked against the model), or the most of the pod's GPUs that split its heads."""
    if config.tensor_parallel_size is not None:
        tp = config.tensor_parallel_size
        if not _splits_heads(tp, shape):
            fits = [t for t in range(1, max(tp, gpus) + 1) if _splits_heads(t, shape)]
            raise StarError(
                f"generation.vllm.tensor_parallel_size is {tp}, but the model's {shape.attention_heads} attention "
                f"heads ({shape.kv_heads} key/value heads) do not split over {tp} GPUs; use one of "
                f"{', '.join(map(str, fits))}."
            )
        return tp
    return max(t for t in range(1, max(1, gpus) + 1) if _splits_heads(t, shape))


def engine_dtype(config: VLLMConfig, shape: ModelShape) -> str:
    """`auto` is the checkpoint's dtype (vLLM's own `auto` would run float32 weights in half precision)."""
    if config.dtype == "auto" and shape.dtype is not None:
        return shape.dtype
    return config.dtype


def llm_kwargs(
    model: str, config: VLLMConfig, shape: ModelShape, *, adapter_rank: int | None = None, gpus: int | None = None
) -> dict[str, Any]:
    """Arguments of `vllm.LLM(...)`. `shape`: the model's heads and dtype; `adapter_rank` set: LoRA serving on;
    `gpus`: what the pod sees (default: `visible_gpus()`)."""
    gpus = visible_gpus() if gpus is None else gpus
    eager = config.enforce_eager if config.enforce_eager is not None else gpus == 0
    kwargs: dict[str, Any] = {
        "model": model,
        "tensor_parallel_size": tensor_parallel_size(config, shape, gpus),
        "dtype": engine_dtype(config, shape),
        "seed": config.seed,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "enable_prefix_caching": config.enable_prefix_caching,
        "enforce_eager": eager,
    }
    if config.max_model_len is not None:
        kwargs["max_model_len"] = config.max_model_len
    if adapter_rank is not None:
        kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=engine_lora_rank(adapter_rank,
                                                                                   config.max_lora_rank))
    return kwargs


def requested_samples(sampling: SamplingConfig) -> int:
    """Completions asked of vLLM per question: greedy decoding gives one (vLLM refuses `n > 1` there), which the
    generator repeats `num_samples` times."""
    return sampling.num_samples if sampling.temperature > 0 else 1


def sampling_kwargs(sampling: SamplingConfig, stop: Sequence[str], question_index: int = 0) -> dict[str, Any]:
    """Arguments of `vllm.SamplingParams(...)` for one question: `n` samples, the task's stop strings (vLLM
    leaves them out of the returned text), and a seed range of its own."""
    n = requested_samples(sampling)
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
        self.config = config or VLLMConfig()
        gpus = visible_gpus()
        if gpus == 0 and self.config.cpu_threads is not None:
            import torch

            torch.set_num_threads(self.config.cpu_threads)
        from transformers import AutoConfig

        try:
            from vllm import LLM
        except ImportError as e:
            raise StarError(
                "generation.backend is vllm, but vLLM is not installed in this environment: on a cluster use the "
                "vLLM image (cluster.images), on this machine `make demo-vllm` (or `.venv-vllm/bin/star`), else set "
                "generation.backend to hf."
            ) from e

        self.chunk_size = max(1, chunk_size)
        rank = lora_rank_of(adapter_dir) if adapter_dir is not None else None
        shape = ModelShape.of(AutoConfig.from_pretrained(model).to_dict())
        self.llm = LLM(**llm_kwargs(model, self.config, shape, adapter_rank=rank, gpus=gpus))
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
            copies = sampling.num_samples // requested_samples(sampling)
            for out in outputs:
                results.append([cut_at_stop(c.text, stop) for c in out.outputs for _ in range(copies)])
            bar.update(len(chunk))
        return results
