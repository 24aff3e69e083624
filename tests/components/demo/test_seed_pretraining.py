import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

import components.demo.builtin as builtin
from components.demo.seed_pretraining import RECIPE, SeedPretraining, SeedStage, seed_documents, seed_sums, stage_sums
from components.demo.tiny_model import build_tokenizer
from components.models.loading import MODEL_REFERENCE, load_model
from components.prepare_model import prepare_model
from components.tasks.arithmetic import ArithmeticTask, scratchpad
from pipelines.config import RunConfig
from tests.conftest import SMALL_BUILTIN


def test_seed_set_covers_the_whole_digit_range_in_few_shot_shaped_documents() -> None:
    cfg = SeedPretraining(digit_weights=[8, 4, 2, 1, 1], examples_per_document=3,
                          stages=[SeedStage(seed_examples=300, seed=0, steps=1)])
    docs = seed_documents(cfg, 0)
    assert len(docs) == 100 and all(d.prompt == "" for d in docs)
    blocks = [b for d in docs for b in d.completion.split("\n\n")]
    assert len(blocks) == 300
    task = ArithmeticTask()
    lengths = {len(b.split("\n")[1].split(" + ")[0].replace(" ", "")) for b in blocks}
    assert lengths == {1, 2, 3, 4, 5}
    for b in blocks:  # every worked example is correct
        q = b.split("Target:\n")[1]
        a, _, c = b.split("\n")[1].partition(" + ")
        assert task.extract_answer(q, direct=False) == str(int(a.replace(" ", "")) + int(c.replace(" ", "")))
    assert any("Hint: " in b for b in blocks)


def test_hint_share_per_digit_count_decides_which_sums_show_their_answer() -> None:
    cfg = SeedPretraining(digit_weights=[1, 1, 1, 1, 1], hint_share=[0, 0, 0.5, 1, 1],
                          stages=[SeedStage(seed_examples=500, seed=0, steps=1)])
    by_digits: dict[str, list[bool]] = {}
    for ex, hint in stage_sums(cfg, 0):
        by_digits.setdefault(ex.group, []).append(hint)
    assert not any(by_digits["1"] + by_digits["2"]) and all(by_digits["4"] + by_digits["5"])
    assert 0.3 < sum(by_digits["3"]) / len(by_digits["3"]) < 0.7
    # one number is the same share for every digit count, drawn as before (recipes written with one number keep
    # their sums)
    flat, listed = SeedPretraining(hint_share=0.3), SeedPretraining(hint_share=[0.3] * 5)
    assert seed_sums(flat, flat.stages[0]) == seed_sums(listed, listed.stages[0])


@pytest.mark.parametrize("share, message", [
    ([0.3, 0.3], "hint_share has 2 shares but digit_weights has 5 digit counts"),
    (1.5, "hint_share must be between 0 and 1"),
    ([0.3, 0.3, 0.3, 0.3, -1], "hint_share must be between 0 and 1"),
])
def test_a_wrong_hint_share_names_what_to_fix(share: float | list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SeedPretraining(hint_share=share)


def test_builtin_base_model_is_built_once_cached_and_loads_with_from_pretrained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = RunConfig.model_validate({"model": {"cache_dir": str(tmp_path / "cache"), "builtin": SMALL_BUILTIN}})
    first = tmp_path / "a"
    prepare_model(cfg.prepare_model_settings(), str(first))
    assert json.loads((first / RECIPE).read_text()) == cfg.model.builtin.model_dump(mode="json")
    AutoModelForCausalLM.from_pretrained(first)
    assert AutoTokenizer.from_pretrained(first).decode([5, 6]) != ""

    def no_rebuild(*a: object, **k: object) -> None:
        raise AssertionError("the cached base model was rebuilt")

    monkeypatch.setattr(builtin, "build_base_model", no_rebuild)
    second = tmp_path / "b"
    prepare_model(cfg.prepare_model_settings(), str(second))
    assert (second / "model.safetensors").read_bytes() == (first / "model.safetensors").read_bytes()


def test_a_model_id_or_path_becomes_a_reference(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = RunConfig.model_validate({"model": {"base": str(tiny_model_dir)}})
    out = tmp_path / "ref"
    prepare_model(cfg.prepare_model_settings(), str(out))
    assert json.loads((out / MODEL_REFERENCE).read_text()) == {"source": str(tiny_model_dir)}
    assert not (out / "model.safetensors").exists()  # big weights stay where they are
    model, tok = load_model(out, out)
    assert model.config.vocab_size == len(tok)


def test_an_unloadable_model_is_one_clear_error(tmp_path: Path) -> None:
    from components.core.errors import StarError

    with pytest.raises(StarError, match="check model.base"):
        load_model(tmp_path, tmp_path)


def test_untrained_builtin_for_smoke_runs(tmp_path: Path) -> None:
    cfg = RunConfig.model_validate({"model": {"base": "builtin:tiny-untrained", "builtin": SMALL_BUILTIN}})
    prepare_model(cfg.prepare_model_settings(), str(tmp_path / "m"))
    model, tok = load_model(tmp_path / "m", tmp_path / "m")
    assert model.config.hidden_size == 32 and tok.eos_token == "</s>"


def test_a_replay_stage_trains_on_the_earlier_stages_sums_too() -> None:
    first, second = SeedStage(seed_examples=50, seed=0, steps=1), SeedStage(seed_examples=20, seed=1, steps=1)
    anneal = SeedStage(seed_examples=0, replay=True, steps=1, lr_schedule="cosine")
    cfg = SeedPretraining(stages=[first, second, anneal])
    questions = [[ex.question for ex, _ in stage_sums(cfg, n)] for n in range(3)]
    assert len(questions[0]) == 50 and len(questions[1]) == 20  # without replay: the stage's own sums only
    assert questions[2] == questions[0] + questions[1]
    assert [ex.question for ex, _ in seed_sums(cfg, second)] == questions[1]
    with pytest.raises(ValueError, match="seed_examples > 0 or replay"):
        SeedStage(seed_examples=0, steps=1)


def test_digit_tokens_make_each_spaced_digit_one_token_and_decode_exactly() -> None:
    text = "Input:\n4 7 2 1 + 3 9 5 8\nTarget:\n" + scratchpad(4721, 3958)
    chars, merged = build_tokenizer(), build_tokenizer(digit_tokens=True)
    ids = merged(text, add_special_tokens=False)["input_ids"]
    assert merged.decode(ids) == text and chars.decode(chars(text, add_special_tokens=False)["input_ids"]) == text
    assert merged.convert_ids_to_tokens(merged(" 7 2", add_special_tokens=False)["input_ids"]) == [" 7", " 2"]
    assert len(ids) < 0.8 * len(text)


def test_without_loss_on_question_the_seed_set_is_question_and_scratchpad_pairs() -> None:
    from components.training.fit import IGNORE, encode_example

    cfg = SeedPretraining(loss_on_question=False, stages=[SeedStage(seed_examples=40, seed=3, steps=1)])
    docs = seed_documents(cfg, 0)
    with_loss = seed_documents(cfg.model_copy(update={"loss_on_question": True}), 0)
    assert [d.prompt + d.completion for d in docs] == [d.completion for d in with_loss]  # the same sums
    tok = build_tokenizer()
    task = ArithmeticTask()
    for d in docs:
        assert d.prompt.startswith("Input:\n") and d.prompt.endswith("Target:\n")
        assert d.completion.startswith("<scratch>") and task.extract_answer(d.completion, direct=False)
        row = encode_example(tok, d.prompt, d.completion, 1024)
        asked = len(tok(d.prompt, add_special_tokens=False)["input_ids"])
        assert row["labels"][:asked] == [IGNORE] * asked and IGNORE not in row["labels"][asked:]
    with pytest.raises(ValueError, match="examples_per_document to 1"):
        SeedPretraining(loss_on_question=False, examples_per_document=2)


def test_the_default_recipe_is_the_shipped_checkpoints_so_the_demo_never_rebuilds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a new recipe field must keep the default that reproduces the shipped build and be listed in its recipe file
    def rebuild(*a: object, **k: object) -> None:
        raise AssertionError("the default recipe is not the shipped checkpoint's: the demo would rebuild it")

    monkeypatch.setattr(builtin, "build_base_model", rebuild)
    assert builtin.builtin_base_model(SeedPretraining(), tmp_path / "cache") == builtin.ASSETS
    assert not (tmp_path / "cache").exists()
