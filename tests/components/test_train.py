import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import components.training.fit
from components.core.artifact_files import TRAIN_STATS
from components.core.rows import TrainExample
from components.settings.steps import TrainSettings
from components.train import train
from components.training.fit import IGNORE, CompletionCollator, encode_example, fit, micro_batch_rows
from pipelines.config import RunConfig
from tests.conftest import write_finetune_dir


def test_prompt_tokens_carry_no_loss(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompt, completion = "Input:\n1 + 2\nTarget:\n", "<scratch>\n</scratch>\n3"
    row = encode_example(tok, prompt, completion, max_length=512)
    n_prompt = len(prompt)  # one token per character
    assert row["labels"][:n_prompt] == [IGNORE] * n_prompt
    assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:]
    assert row["input_ids"][-1] == tok.eos_token_id  # the end of text is learned too

    # The loss the model trains on is the cross-entropy of completion tokens only: changing the prompt's
    # labels cannot change it, and it equals a hand computation over the completion positions.
    batch = CompletionCollator(tok.pad_token_id)([row, encode_example(tok, "Q?\n", "42", 512)])
    loss = model(**batch).loss
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shift_logits, shift_labels = logits[:, :-1], batch["labels"][:, 1:]
    keep = shift_labels != IGNORE
    manual = torch.nn.functional.cross_entropy(shift_logits[keep], shift_labels[keep])
    assert torch.allclose(loss, manual, atol=1e-5)
    assert keep.sum() == len(completion) + 1 + len("42") + 1


def _finetune_dir(tmp: Path) -> Path:
    rows = [
        TrainExample(id=str(i), source="generation", prompt=f"Input:\n{i} + 1\nTarget:\n", completion=str(i + 1))
        for i in range(8)
    ]
    return write_finetune_dir(tmp / "finetune", rows)


def _config(method: str, continue_from_previous: bool, lr: float) -> TrainSettings:
    return RunConfig.model_validate({
        "task": {"name": "arithmetic"},
        "training": {"method": method, "learning_rate": lr, "batch_size": 4,
                     "continue_from_previous": continue_from_previous,
                     "schedule": {"kind": "linear", "start_steps": 2, "add_steps": 1}},
    }).train_settings()


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}


def _distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return sum(float((a[k] - b[k]).abs().sum()) for k in a)


def test_each_iteration_trains_from_the_base_weights_unless_continue_from_previous(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = _finetune_dir(tmp_path)
    # A "previous iteration" checkpoint, far from the base.
    previous = tmp_path / "previous"
    train(_config("full", False, 5e-2), 1, str(data), str(tiny_model_dir), str(tiny_model_dir), str(previous))
    base_w, prev_w = _weights(tiny_model_dir), _weights(previous)
    assert _distance(base_w, prev_w) > 1.0

    # Iteration 2 with a negligible learning rate: where the result lands shows where training started.
    fresh = tmp_path / "fresh"
    stats = train(_config("full", False, 1e-12), 2, str(data), str(tiny_model_dir), str(previous), str(fresh))
    assert stats.trained_from == "base" and stats.train_steps == 3  # linear schedule: 2 + 1 * (2 - 1)
    assert _distance(_weights(fresh), base_w) < 1e-3 < _distance(_weights(fresh), prev_w)

    cont = tmp_path / "continued"
    stats = train(_config("full", True, 1e-12), 2, str(data), str(tiny_model_dir), str(previous), str(cont))
    assert stats.trained_from == "previous"
    assert _distance(_weights(cont), prev_w) < 1e-3 < _distance(_weights(cont), base_w)
    assert json.loads((cont / TRAIN_STATS).read_text())["trained_from"] == "previous"


def test_lora_saves_an_adapter_that_loads_on_the_base(tiny_model_dir: Path, tmp_path: Path) -> None:
    from components.models.loading import is_adapter, load_model

    data = _finetune_dir(tmp_path)
    out = tmp_path / "adapter"
    stats = train(_config("lora", False, 1e-2), 1, str(data), str(tiny_model_dir), str(tiny_model_dir), str(out))
    assert is_adapter(out) and stats.method == "lora" and stats.train_loss is not None
    assert not (out / "model.safetensors").exists()  # no merged copy of the base
    model, _ = load_model(tiny_model_dir, out)
    assert type(model).__name__ == "PeftModelForCausalLM"
    # continue_from_previous with LoRA starts from the previous adapter
    cont = tmp_path / "cont"
    stats = train(_config("lora", True, 1e-12), 2, str(data), str(tiny_model_dir), str(out), str(cont))
    assert stats.trained_from == "previous"


def test_fit_runs_exactly_the_requested_steps(tiny_model_dir: Path, tmp_path: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [TrainExample(id="a", source="generation", prompt="p", completion="c")] * 3
    result = fit(model, tok, rows, max_steps=5, output_dir=str(tmp_path), learning_rate=1e-3, batch_size=2)
    assert result.steps == 5 and result.mean_loss is not None
    assert fit(model, tok, [], max_steps=5, output_dir=str(tmp_path), learning_rate=1e-3, batch_size=2).steps == 0


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
def test_the_learning_rate_follows_the_schedule(tiny_model_dir: Path, tmp_path: Path, schedule: str) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [TrainExample(id="a", source="generation", prompt="p", completion="c")] * 3
    lrs = fit(model, tok, rows, max_steps=8, output_dir=str(tmp_path), learning_rate=1e-3, batch_size=2,
              warmup_ratio=0.25, lr_schedule=schedule).learning_rates  # type: ignore[arg-type]
    assert len(lrs) == 8
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(1e-3)  # two warm-up steps (the Trainer's start at 0)
    if schedule == "constant":
        assert lrs[2:] == pytest.approx([1e-3] * 6)
    else:  # decays every step after warm-up, towards zero at the end
        assert all(a > b for a, b in zip(lrs[2:], lrs[3:], strict=False)) and lrs[-1] < 0.2e-3


def test_micro_batch_rows_divide_the_batch_within_the_token_budget() -> None:
    assert micro_batch_rows(16, 224, 1024) == 4
    assert micro_batch_rows(16, 100, 1024) == 8  # 10 rows fit, 8 is the largest divisor of 16 that does
    assert micro_batch_rows(8, 10, 1024) == 8
    assert micro_batch_rows(7, 224, 1024) == 1
    assert micro_batch_rows(4, 5000, 1024) == 1


def test_micro_batches_make_the_same_update_as_one_pass(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rows of very different completion lengths: the step's loss must be the mean over all its completion
    # tokens, not a mean of per-pass means, for the passes to add up to the one-pass update
    rows = [TrainExample(id=str(i), source="generation", prompt="Q" * (i + 1), completion="7" * (1 + 9 * (i % 3)))
            for i in range(8)]
    results, weights = [], []
    for budget in (10_000, 1):  # one pass per step, then one row per pass
        monkeypatch.setattr(components.training.fit, "CPU_MICRO_BATCH_TOKENS", budget)
        torch.manual_seed(0)
        tok = AutoTokenizer.from_pretrained(tiny_model_dir)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        results.append(fit(model, tok, rows, max_steps=3, output_dir=str(tmp_path / str(budget)),
                           learning_rate=1e-2, batch_size=4))
        weights.append({n: p.detach().clone() for n, p in model.named_parameters()})
    assert results[0].steps == results[1].steps == 3
    assert results[0].mean_loss == pytest.approx(results[1].mean_loss, rel=1e-5)
    for name, w in weights[0].items():
        torch.testing.assert_close(weights[1][name], w, rtol=1e-4, atol=1e-5)


def test_each_step_is_a_random_mix_of_lengths_sorted_so_micro_batches_pad_little() -> None:
    # Four kinds of rows whose length gives away their kind (as a sum's digit count does). Steps of one length
    # each (length-grouped batches) trained far worse: mean loss over steps 300-399 of 0.64-0.74 against 0.12-0.18 on
    # 1-3-digit sums.
    lengths = [10 * (1 + i % 4) + i % 3 for i in range(4000)]
    batch = 16
    sampler = components.training.fit.EpochSeededStepSampler(batch, lengths, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(len(lengths)))  # every row once per epoch
    steps = [order[i : i + batch] for i in range(0, len(order), batch)]
    kinds = [len({lengths[i] // 10 for i in step}) for step in steps]
    assert sum(k >= 3 for k in kinds) >= 0.9 * len(steps)  # a step mixes the kinds
    for step in steps:  # longest first: consecutive micro-batches of a step hold rows of similar length
        assert [lengths[i] for i in step] == sorted((lengths[i] for i in step), reverse=True)
    assert list(components.training.fit.EpochSeededStepSampler(batch, lengths, seed=3)) == order  # resumable
    sampler.set_epoch(1)
    assert list(sampler) != order


def test_cpu_bf16_runs_the_linear_layers_in_bf16_and_attention_in_fp32(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    seen: dict[str, set] = {"linear": set(), "attention": set()}
    model.model.layers[0].self_attn.q_proj.register_forward_hook(
        lambda module, args, out: seen["linear"].add(out.dtype))
    fp32_attention = components.training.fit._sdpa_fp32

    def attention(module, query, key, value, mask, **kwargs):  # type: ignore[no-untyped-def]
        out, weights = fp32_attention(module, query, key, value, mask, **kwargs)
        seen["attention"].add((torch.is_autocast_enabled("cpu"), out.dtype))
        return out, weights

    monkeypatch.setattr(components.training.fit, "_sdpa_fp32", attention)
    rows = [TrainExample(id=str(i), source="generation", prompt=f"{i} + {i} =", completion=f" {2 * i}")
            for i in range(8)]
    result = fit(model, tok, rows, max_steps=12, output_dir=str(tmp_path), learning_rate=1e-2, batch_size=4,
                 cpu_bf16=True)
    assert seen["linear"] == {torch.bfloat16}
    # attention runs through the float32 function, called under autocast (which it turns off inside); its input
    # is float32 already (the rotary embedding's float32 tables promote bf16 projections), so its output is too
    assert seen["attention"] == {(True, torch.float32)}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay float32
    assert model.config._attn_implementation == "sdpa"  # the model's own attention again after training
    assert result.steps == 12 and result.mean_loss is not None and result.learning_rates


def test_cpu_precision_auto_follows_the_cpus_bf16_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    from components.training.fit import cpu_bf16

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    assert cpu_bf16("auto") and cpu_bf16("bf16") and not cpu_bf16("fp32")
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    assert not cpu_bf16("auto") and cpu_bf16("bf16")


def test_passes_side_by_side_make_the_same_update_as_one_after_the_other(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.training.cpu_passes import ConcurrentPasses

    rows = [TrainExample(id=str(i), source="generation", prompt="Q" * (i + 1), completion="7" * (1 + 9 * (i % 3)))
            for i in range(8)]
    monkeypatch.setattr(components.training.fit, "CPU_MICRO_BATCH_TOKENS", 48)  # passes of 1-2 rows
    runs: list[int] = []
    run = ConcurrentPasses.run
    monkeypatch.setattr(ConcurrentPasses, "run", lambda self, *a: runs.append(self.workers) or run(self, *a))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        weights, losses = [], []
        for side_by_side in (2, 1):
            monkeypatch.setattr(components.training.fit, "PASSES_SIDE_BY_SIDE", side_by_side)
            torch.manual_seed(0)
            tok = AutoTokenizer.from_pretrained(tiny_model_dir)
            model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
            losses.append(fit(model, tok, rows, max_steps=3, output_dir=str(tmp_path / str(side_by_side)),
                              learning_rate=1e-2, batch_size=4).mean_loss)
            weights.append({n: p.detach().clone() for n, p in model.named_parameters()})
            assert torch.get_num_threads() == 2  # the passes' threads do not change the caller's
    finally:
        torch.set_num_threads(threads)
    assert runs == [2, 2, 2]  # the first run's 3 steps went two passes at a time, the second's one after the other
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for name, w in weights[0].items():
        torch.testing.assert_close(weights[1][name], w, rtol=1e-4, atol=1e-5)


def test_a_steps_passes_are_cut_to_their_own_longest_row() -> None:
    from components.training.cpu_passes import split_passes

    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]])
    batch = {"input_ids": torch.arange(16).view(4, 4), "labels": torch.arange(16).view(4, 4), "attention_mask": mask}
    passes = split_passes(batch, 2)
    assert [tuple(p["input_ids"].shape) for p in passes] == [(2, 4), (2, 2)]
    assert passes[1]["labels"].tolist() == [[8, 9], [12, 13]]
