from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from components.generation.hf import HFGenerator
from components.generation.sampling import SamplingConfig, cut_at_stop

PREFIX = "Input:\n1 2 + 3 4\nTarget:\n<scratch>\n</scratch>\n4 6\n\n"
QUESTIONS = [f"Input:\n{q}\nTarget:\n" for q in ("1 + 2", "9 9 + 1 1", "5 5 5 + 4 4 4", "7 + 8", "1 2 3 4 + 5")]


@pytest.fixture(scope="module")
def model_and_tok(tiny_model_dir: Path):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def _plain_generate(model, tok, prompt: str, max_new_tokens: int) -> str:
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_batched_prefix_cached_greedy_equals_one_prompt_at_a_time(model_and_tok) -> None:
    model, tok = model_and_tok
    gen = HFGenerator(model, tok, batch_size=4)  # two batches of mixed lengths (left padding inside a batch)
    out = gen.generate(PREFIX, QUESTIONS, SamplingConfig(max_new_tokens=24), stop=["\n\n"])
    for q, completions in zip(QUESTIONS, out, strict=True):
        assert len(completions) == 1
        assert completions[0] == cut_at_stop(_plain_generate(model, tok, PREFIX + q, 24), ["\n\n"])


def test_without_prefix_too(model_and_tok) -> None:
    model, tok = model_and_tok
    out = HFGenerator(model, tok, batch_size=8).generate("", QUESTIONS, SamplingConfig(max_new_tokens=16), stop=[])
    assert [o[0] for o in out] == [_plain_generate(model, tok, q, 16) for q in QUESTIONS]


def test_seeded_sampling_gives_n_samples_reproducibly(model_and_tok) -> None:
    model, tok = model_and_tok
    gen = HFGenerator(model, tok, batch_size=6)
    cfg = SamplingConfig(num_samples=3, temperature=1.5, max_new_tokens=12, seed=7)
    a = gen.generate(PREFIX, QUESTIONS, cfg, stop=[])
    b = gen.generate(PREFIX, QUESTIONS, cfg, stop=[])
    assert a == b and all(len(x) == 3 for x in a)
    assert any(len(set(x)) > 1 for x in a)  # samples differ
    c = gen.generate(PREFIX, QUESTIONS, cfg.model_copy(update={"seed": 8}), stop=[])
    assert c != a


def test_stop_strings_end_the_completion() -> None:
    assert cut_at_stop("4 6\n\nInput:\n", ["\n\n"]) == "4 6"
    assert cut_at_stop("abc", ["\n\n"]) == "abc"
