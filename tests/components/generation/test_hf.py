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


@pytest.fixture(scope="module")
def trained():
    """The demo's base model: it writes scratchpads of different lengths, each ended by the task's stop string."""
    from components.demo.builtin import ASSETS
    from components.models.loading import load_model

    return load_model(ASSETS, ASSETS)


SUMS = [f"Input:\n{q}\nTarget:\n" for q in ("6 + 6", "1 5 + 4 3", "7 + 5", "3 1 4 + 2 7 1", "9 0 9 9 + 1 2",
                                             "8 + 9 1", "2 2 2 2 + 3 3 3 3")]
FEW_SHOT = ("Input:\n5 1 + 2 9\nTarget:\n<scratch>\n5 1 + 2 9 , C: 0\n5 + 2 , 0 C: 1\n, 8 0 C: 0\n0 8 0\n</scratch>\n"
            "8 0\n\n")


def _generate_alone(model, tok, prompt: str, max_new_tokens: int, stop: list[str]) -> str:
    """model.generate on one prompt, stopped by the same rule (the stop string in the generated text)."""
    from transformers import StoppingCriteriaList

    from components.generation.stops import StopOnStrings

    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    width = ids["input_ids"].shape[1]
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id,
                         stopping_criteria=StoppingCriteriaList([StopOnStrings(tok, stop, width)]))
    return cut_at_stop(tok.decode(out[0, width:], skip_special_tokens=True), stop)


@pytest.mark.parametrize("prefix", ["", FEW_SHOT])
def test_greedy_equals_generate_while_rows_stop_at_different_steps(trained, prefix: str) -> None:
    model, tok = trained
    stop = ["\n\n"]
    out = HFGenerator(model, tok, batch_size=8).generate(prefix, SUMS, SamplingConfig(max_new_tokens=160), stop)
    expected = [_generate_alone(model, tok, prefix + q, 160, stop) for q in SUMS]
    assert [o[0] for o in out] == expected
    lengths = {len(o[0]) for o in out}
    assert len(lengths) >= 4 and max(lengths) < 160  # rows left the batch at different steps, all at the stop


def test_a_row_finishing_early_leaves_the_others_unchanged(trained) -> None:
    model, tok = trained
    cfg = SamplingConfig(max_new_tokens=160)
    together = HFGenerator(model, tok, batch_size=len(SUMS)).generate(FEW_SHOT, SUMS, cfg, ["\n\n"])
    alone = HFGenerator(model, tok, batch_size=1).generate(FEW_SHOT, SUMS, cfg, ["\n\n"])
    assert together == alone
    # a stop string met early by some rows only ("C: 1" is a carry) ends those rows; the others run on unchanged
    carry = HFGenerator(model, tok, batch_size=len(SUMS)).generate(FEW_SHOT, SUMS, cfg, ["\n\n", "C: 1"])
    for full, cut in zip(together, carry, strict=True):
        assert cut[0] == cut_at_stop(full[0], ["C: 1"])
    assert any(c[0] != f[0] for c, f in zip(carry, together, strict=True))
    assert any(c[0] == f[0] for c, f in zip(carry, together, strict=True))


def test_greedy_samples_are_one_completion_repeated(trained) -> None:
    model, tok = trained
    gen = HFGenerator(model, tok, batch_size=6)
    one = gen.generate("", SUMS, SamplingConfig(max_new_tokens=80), ["\n\n"])
    three = gen.generate("", SUMS, SamplingConfig(num_samples=3, max_new_tokens=80), ["\n\n"])
    assert three == [o * 3 for o in one]


def test_sampling_is_reproducible_and_keeps_its_rows_apart(trained) -> None:
    model, tok = trained
    gen = HFGenerator(model, tok, batch_size=8)
    cfg = SamplingConfig(num_samples=4, temperature=1.0, top_p=0.95, max_new_tokens=120, seed=3)
    a = gen.generate(FEW_SHOT, SUMS[:4], cfg, ["\n\n"])
    assert a == gen.generate(FEW_SHOT, SUMS[:4], cfg, ["\n\n"])
    assert all(len(x) == 4 for x in a)
    assert any(len(set(x)) > 1 for x in a)
    assert a != gen.generate(FEW_SHOT, SUMS[:4], cfg.model_copy(update={"seed": 4}), ["\n\n"])
    assert all("\n\n" not in c for x in a for c in x)


def test_eager_attention_gives_the_same_completions(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    sdpa = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    eager = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager").eval()
    cfg = SamplingConfig(max_new_tokens=20)
    a = HFGenerator(sdpa, tok, batch_size=3).generate(PREFIX, QUESTIONS, cfg, stop=[" "])
    assert a == HFGenerator(eager, tok, batch_size=3).generate(PREFIX, QUESTIONS, cfg, stop=[" "])
    assert a == [[_plain_generate(sdpa, tok, PREFIX + q, 20).split(" ")[0]] for q in QUESTIONS]
