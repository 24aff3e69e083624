"""The vLLM backend's requests, checked without vLLM: the argument builders, and VLLMGenerator driving a stand-in
`vllm` module that records every call. `tests/engines/vllm/` runs the backend on vLLM's real engine."""

from __future__ import annotations

import json
import shutil
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from components.core.errors import StarError
from components.demo.builtin import ASSETS
from components.demo.tiny_model import build_tokenizer
from components.generation.sampling import SamplingConfig
from components.generation.vllm import (
    ModelShape,
    VLLMConfig,
    VLLMGenerator,
    engine_lora_rank,
    llm_kwargs,
    lora_rank_of,
    lora_request_args,
    sampling_kwargs,
    visible_gpus,
)
from components.models.loading import MODEL_REFERENCE

#: Llama-3.1-8B: 32 attention heads, 8 key/value heads, bfloat16 weights; Qwen2.5-7B: 28 and 4.
LLAMA_8B = ModelShape(attention_heads=32, kv_heads=8, dtype="bfloat16")
QWEN_7B = ModelShape(attention_heads=28, kv_heads=4, dtype="bfloat16")


def _adapter(path: Path, r: int, rank_pattern: dict[str, int] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": r, "rank_pattern": rank_pattern or {},
                                                          "peft_type": "LORA"}))
    return path


def test_tensor_parallel_size_defaults_to_the_gpus_of_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert visible_gpus() == 4
    assert llm_kwargs("m", VLLMConfig(), LLAMA_8B)["tensor_parallel_size"] == 4
    assert llm_kwargs("m", VLLMConfig(), LLAMA_8B, gpus=8)["tensor_parallel_size"] == 8
    assert llm_kwargs("m", VLLMConfig(tensor_parallel_size=2), LLAMA_8B, gpus=8)["tensor_parallel_size"] == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == 0
    assert llm_kwargs("m", VLLMConfig(), LLAMA_8B)["tensor_parallel_size"] == 1  # never 0


def test_default_tensor_parallel_size_divides_the_attention_heads() -> None:
    """Qwen2.5-7B's 28 heads do not split over 8 GPUs (vLLM refuses the engine): 4 of them do."""
    assert llm_kwargs("m", VLLMConfig(), QWEN_7B, gpus=8)["tensor_parallel_size"] == 4
    assert llm_kwargs("m", VLLMConfig(), QWEN_7B, gpus=3)["tensor_parallel_size"] == 2
    # key/value heads are split too, or replicated when fewer than the GPUs: 12 heads, 8 KV heads -> not 3 or 6
    assert llm_kwargs("m", VLLMConfig(), ModelShape(attention_heads=12, kv_heads=8), gpus=6)[
        "tensor_parallel_size"] == 4
    with pytest.raises(StarError, match=r"tensor_parallel_size is 8.*28 attention heads.*use one of 1, 2, 4\.$"):
        llm_kwargs("m", VLLMConfig(tensor_parallel_size=8), QWEN_7B, gpus=8)


def test_auto_dtype_is_the_checkpoints() -> None:
    """A float32 checkpoint runs in float32, as the hf backend loads it (vLLM's own `auto` would halve it)."""
    fp32 = ModelShape.of(json.loads((ASSETS / "config.json").read_text()))
    assert fp32.dtype == "float32" and fp32.attention_heads == 4
    assert llm_kwargs("m", VLLMConfig(), fp32, gpus=1)["dtype"] == "float32"
    assert llm_kwargs("m", VLLMConfig(), LLAMA_8B, gpus=1)["dtype"] == "bfloat16"
    assert llm_kwargs("m", VLLMConfig(dtype="float16"), fp32, gpus=1)["dtype"] == "float16"  # as configured
    old_style = ModelShape.of({"num_attention_heads": 8, "torch_dtype": "float16"})
    assert old_style.dtype == "float16" and old_style.kv_heads == 8
    assert llm_kwargs("m", VLLMConfig(), ModelShape(attention_heads=2, kv_heads=2), gpus=1)["dtype"] == "auto"


def test_enforce_eager_is_on_without_a_gpu() -> None:
    assert llm_kwargs("m", VLLMConfig(), LLAMA_8B, gpus=0)["enforce_eager"] is True
    assert llm_kwargs("m", VLLMConfig(), LLAMA_8B, gpus=2)["enforce_eager"] is False
    assert llm_kwargs("m", VLLMConfig(enforce_eager=True), LLAMA_8B, gpus=2)["enforce_eager"] is True
    assert llm_kwargs("m", VLLMConfig(enforce_eager=False), LLAMA_8B, gpus=0)["enforce_eager"] is False


def test_engine_arguments() -> None:
    cfg = VLLMConfig(gpu_memory_utilization=0.85, max_model_len=4096, dtype="bfloat16", seed=7)
    kwargs = llm_kwargs("meta-llama/Llama-3.1-8B", cfg, LLAMA_8B, gpus=1)
    assert kwargs == {
        "model": "meta-llama/Llama-3.1-8B", "tensor_parallel_size": 1, "dtype": "bfloat16", "seed": 7,
        "gpu_memory_utilization": 0.85, "enable_prefix_caching": True, "max_model_len": 4096,
        "enforce_eager": False,
    }
    # no adapter: no LoRA machinery in the engine
    assert "enable_lora" not in kwargs and "max_lora_rank" not in kwargs
    assert llm_kwargs("m", VLLMConfig(enable_prefix_caching=False), LLAMA_8B, gpus=1)["enable_prefix_caching"] is False
    assert "max_model_len" not in llm_kwargs("m", VLLMConfig(), LLAMA_8B, gpus=1)


def test_lora_engine_arguments_fit_the_adapter_rank(tmp_path: Path) -> None:
    kwargs = llm_kwargs("m", VLLMConfig(), LLAMA_8B, adapter_rank=12, gpus=1)
    assert kwargs["enable_lora"] is True and kwargs["max_loras"] == 1
    assert kwargs["max_lora_rank"] == 16  # the smallest rank vLLM accepts that holds r=12
    assert engine_lora_rank(16, None) == 16 and engine_lora_rank(64, 128) == 128
    with pytest.raises(StarError, match="max_lora_rank"):
        engine_lora_rank(32, 16)
    with pytest.raises(StarError, match="rank 512"):
        engine_lora_rank(1024, None)
    with pytest.raises(ValidationError):
        VLLMConfig(max_lora_rank=12)  # vLLM only takes 1, 8, 16, 32, ...
    assert lora_rank_of(_adapter(tmp_path / "a", 8, {"q_proj": 24})) == 24


def test_sampling_parameters() -> None:
    sampling = SamplingConfig(num_samples=4, temperature=0.7, top_p=0.9, max_new_tokens=200, seed=3)
    first = sampling_kwargs(sampling, ["\n\n", "", "Q:"], 0)
    assert first == {"n": 4, "temperature": 0.7, "top_p": 0.9, "max_tokens": 200, "stop": ["\n\n", "Q:"],
                     "seed": first["seed"]}
    # vLLM seeds sample k of a request with seed + k: the ranges of different questions never overlap
    seeds = [set(range(s, s + 4)) for s in (sampling_kwargs(sampling, [], i)["seed"] for i in range(50))]
    assert all(not (a & b) for i, a in enumerate(seeds) for b in seeds[i + 1 :])
    assert sampling_kwargs(sampling.model_copy(update={"seed": 4}), [], 0)["seed"] != first["seed"]
    greedy = sampling_kwargs(SamplingConfig(), ["\n"])
    assert greedy["n"] == 1 and greedy["temperature"] == 0.0


def test_greedy_asks_for_one_completion() -> None:
    """vLLM refuses n > 1 with temperature 0 ("n must be 1 when using greedy sampling"); the generator repeats
    the one completion (tests/engines/vllm checks it against the engine and the hf backend)."""
    assert sampling_kwargs(SamplingConfig(num_samples=4), ["\n"])["n"] == 1
    assert sampling_kwargs(SamplingConfig(num_samples=4, temperature=0.5), ["\n"])["n"] == 4


def test_sampling_seeds_stay_in_the_engines_range() -> None:
    """vLLM (and torch's generators) take signed 64-bit seeds; a question's n streams are seed .. seed + n - 1."""
    for seed in (2**40, 2**62 + 12345, 10**30):
        for q in (0, 1, 999):
            first = sampling_kwargs(SamplingConfig(num_samples=8, temperature=1.0, seed=seed), [], q)["seed"]
            assert 0 <= first and first + 7 < 2**63


def test_lora_request_names_the_adapter_folder(tmp_path: Path) -> None:
    args = lora_request_args(tmp_path / "iteration-3" / ".." / "iteration-3")
    assert args == {"lora_name": "star-iteration-3", "lora_int_id": 1,
                    "lora_path": str((tmp_path / "iteration-3").resolve())}


# -- VLLMGenerator against a stand-in `vllm` -------------------------------------------------------------------


@dataclass
class _Completion:
    index: int
    text: str


@dataclass
class _RequestOutput:
    request_id: str
    outputs: list[_Completion]


@dataclass
class _Recorder:
    llm_kwargs: list[dict[str, Any]] = field(default_factory=list)
    sampling: list[dict[str, Any]] = field(default_factory=list)
    lora: list[dict[str, Any]] = field(default_factory=list)
    generate_calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    rec = _Recorder()
    tokenizer = build_tokenizer()

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            rec.sampling.append(kwargs)
            self.kwargs = kwargs

    class LoRARequest:
        def __init__(self, **kwargs: Any) -> None:
            rec.lora.append(kwargs)
            self.kwargs = kwargs

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            rec.llm_kwargs.append(kwargs)

        def get_tokenizer(self) -> Any:
            return tokenizer

        def generate(self, prompts: list[Any], sampling_params: Any, use_tqdm: bool = True,
                     lora_request: Any = None) -> list[_RequestOutput]:
            rec.generate_calls.append({"prompts": prompts, "params": sampling_params, "use_tqdm": use_tqdm,
                                       "lora_request": lora_request})
            out = []
            for prompt, params in zip(prompts, sampling_params, strict=True):
                question = tokenizer.decode(prompt["prompt_token_ids"])
                n = params.kwargs["n"]
                # vLLM leaves the stop string out; a stop string the model writes later is cut by the backend too
                out.append(_RequestOutput(str(len(rec.generate_calls)),
                                          [_Completion(k, f"{question[-2:]}#{k}") for k in range(n)]))
            return out

    vllm = types.ModuleType("vllm")
    vllm.LLM = LLM  # type: ignore[attr-defined]
    vllm.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest  # type: ignore[attr-defined]
    vllm.lora = lora  # type: ignore[attr-defined]
    lora.request = request  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", request)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    return rec


def test_generator_serves_the_adapter_through_a_lora_request(fake_vllm: _Recorder, tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / MODEL_REFERENCE).write_text(json.dumps({"source": str(ASSETS)}))
    adapter = _adapter(tmp_path / "adapter", 16)
    cfg = VLLMConfig(max_model_len=2048)
    gen = VLLMGenerator.from_model_dirs(base, adapter, cfg, chunk_size=2)

    shape = ModelShape(attention_heads=4, kv_heads=4, dtype="float32")  # the demo model's config.json
    assert fake_vllm.llm_kwargs == [llm_kwargs(str(ASSETS), cfg, shape, adapter_rank=16, gpus=2)]
    assert fake_vllm.llm_kwargs[0]["enable_lora"] is True and fake_vllm.llm_kwargs[0]["tensor_parallel_size"] == 2
    assert fake_vllm.lora == [lora_request_args(adapter)]

    prefix = "Q: 1+1\nA: 2\n\n"
    questions = ["Q: 2+2\nA:", "Q: 3+3\nA:", "Q: 4+4\nA:", "Q: 5+5\nA:", "Q: 6+6\nA:"]
    sampling = SamplingConfig(num_samples=3, temperature=0.8, top_p=0.95, max_new_tokens=64, seed=5)
    out = gen.generate(prefix, questions, sampling, stop=["\n\n"], label="test")

    # answers come back per question, in order, n per question
    assert out == [[f"{q[-2:]}#{k}" for k in range(3)] for q in questions]
    # chunks of 2 prompts: 3 calls, each with the adapter's request and one SamplingParams per prompt
    assert len(fake_vllm.generate_calls) == 3
    assert all(c["lora_request"].kwargs == lora_request_args(adapter) for c in fake_vllm.generate_calls)
    assert all(c["use_tqdm"] is False for c in fake_vllm.generate_calls)
    assert fake_vllm.sampling == [sampling_kwargs(sampling, ["\n\n"], i) for i in range(5)]
    # every prompt starts with the very same prefix tokens (what prefix caching shares), then the question
    tok = build_tokenizer()
    prefix_ids = tok(prefix, add_special_tokens=False)["input_ids"]
    prompts = [p["prompt_token_ids"] for c in fake_vllm.generate_calls for p in c["prompts"]]
    assert prompts == [prefix_ids + tok(q, add_special_tokens=False)["input_ids"] for q in questions]


def test_generator_loads_a_full_checkpoint_as_the_model(fake_vllm: _Recorder, tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    full = tmp_path / "full"
    shutil.copytree(ASSETS, full)
    gen = VLLMGenerator.from_model_dirs(base, full, VLLMConfig())
    assert fake_vllm.llm_kwargs[0]["model"] == str(full) and "enable_lora" not in fake_vllm.llm_kwargs[0]
    assert fake_vllm.lora == []
    out = gen.generate("", ["Q: 9\nA:"], SamplingConfig(), stop=["\n"])
    assert out == [["A:#0"]]
    assert fake_vllm.generate_calls[0]["lora_request"] is None


def test_without_vllm_installed_the_error_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # what the main environment has: no vLLM
    with pytest.raises(StarError, match="generation.backend is vllm, but vLLM is not installed"):
        VLLMGenerator(str(ASSETS), VLLMConfig())
