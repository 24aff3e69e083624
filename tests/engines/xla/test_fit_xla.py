"""The TPU training path for real on XLA's CPU device, split into `CPU_NUM_DEVICES` virtual devices
(conftest.py): the train step with LoRA and `fit` with full fine-tuning run SPMD with FSDPv2 in bf16 over padded
buckets; the loss falls, the model comes back to the CPU and saves, the batches carry exactly the CPU/GPU
path's label masks, the compiled programs land in the persistent cache, and a run resumes from its
checkpoint exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch_xla
from transformers import AutoModelForCausalLM, AutoTokenizer

from components.core.rows import TrainExample
from components.demo.seed_pretraining import seed_pair
from components.tasks.arithmetic import ArithmeticTask
from components.train import train
from components.training import xla
from components.training.config import TrainingConfig
from components.training.fit import IGNORE, CompletionCollator, encode_example, fit
from components.training.starting_model import starting_model
from components.training.trainer_state import CheckpointPlan
from pipelines.config import RunConfig
from tests.conftest import write_finetune_dir
from tests.paths import REPO

BASE = REPO / "components" / "demo" / "assets" / "tiny-arithmetic"
MAX_LENGTH = 192


def sums(n: int, seed: int) -> list[TrainExample]:
    """Arithmetic rationales in the shape STaR keeps them (question as prompt, scratchpad and answer)."""
    task = ArithmeticTask()
    return [seed_pair(e, False, e.id) for e in task.generate(n, seed, f"s{seed}", digits=[4])]


def mean_loss(model: torch.nn.Module, tok: object, rows: list[TrainExample]) -> float:
    """The model's loss on `rows` on the CPU in fp32, through the CPU path's collator."""
    batch = CompletionCollator(tok.pad_token_id)([  # type: ignore[attr-defined]
        encode_example(tok, r.prompt, r.completion, MAX_LENGTH) for r in rows])  # type: ignore[arg-type]
    model.eval()
    with torch.no_grad():
        return float(model.to("cpu", torch.float32)(**batch).loss)


def test_train_step_with_lora_runs_spmd_and_the_loss_falls(xla_cache: Path, tmp_path: Path) -> None:
    rows = sums(24, seed=7)
    settings = RunConfig.model_validate({
        "task": {"name": "arithmetic"},
        "training": {"method": "lora", "lora_r": 8, "learning_rate": 3e-3, "batch_size": 2,
                     "max_length": MAX_LENGTH, "compile_cache": str(xla_cache),
                     "checkpoints": str(tmp_path / "checkpoints"), "checkpoint_every": 4,
                     "schedule": {"kind": "linear", "start_steps": 8, "add_steps": 0}},
    }).train_settings()
    tok = AutoTokenizer.from_pretrained(BASE)
    before = mean_loss(AutoModelForCausalLM.from_pretrained(BASE), tok, rows)

    out = tmp_path / "model"
    stats = train(settings, 1, str(write_finetune_dir(tmp_path / "set", rows)), str(BASE), str(BASE), str(out))

    assert stats is not None and stats.train_steps == 8 and stats.method == "lora"
    assert [p.name for p in (tmp_path / "checkpoints").rglob("checkpoint-*")] == ["checkpoint-8"]
    from peft import PeftModel

    trained = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), out)
    after = mean_loss(trained, tok, rows)
    assert after < 0.8 * before, (before, after)
    # the compiled programs were serialized into the persistent cache (XLA's CPU device writes them but cannot
    # load them back; a TPU host does, so the next train step skips compiling)
    assert any(p.is_file() for p in xla_cache.rglob("*"))


def test_padded_buckets_carry_the_cpu_paths_label_masks_and_loss(xla_cache: Path) -> None:
    tok = AutoTokenizer.from_pretrained(BASE)
    rows = [encode_example(tok, r.prompt, r.completion, MAX_LENGTH) for r in sums(8, seed=9)]
    cpu = CompletionCollator(tok.pad_token_id)(rows)
    padded = CompletionCollator(tok.pad_token_id, xla.padding_buckets(MAX_LENGTH))(rows)

    width = cpu["labels"].shape[1]
    assert padded["labels"].shape[1] == xla.bucket_for(width, xla.padding_buckets(MAX_LENGTH)) > width
    for key in ("input_ids", "labels", "attention_mask"):
        assert torch.equal(padded[key][:, :width], cpu[key])
    assert (padded["labels"][:, width:] == IGNORE).all() and (padded["attention_mask"][:, width:] == 0).all()

    # the same model gives the same loss on the CPU path's batch (CPU) and the bucket-padded one (XLA devices)
    model = AutoModelForCausalLM.from_pretrained(BASE).eval()
    with torch.no_grad():
        on_cpu = float(model(**cpu).loss)
        device = torch_xla.device()
        on_xla = float(model.to(device)(**{k: v.to(device) for k, v in padded.items()}).loss)
    assert on_xla == pytest.approx(on_cpu, rel=1e-4)


def test_full_fine_tuning_learns_and_resumes_from_its_checkpoint_exactly(tmp_path: Path) -> None:
    rows = sums(24, seed=8)
    tok = AutoTokenizer.from_pretrained(BASE)
    before = mean_loss(AutoModelForCausalLM.from_pretrained(BASE), tok, rows)

    def run(steps: int, checkpoints: Path, every: int) -> tuple[torch.nn.Module, float | None]:
        model, tok, _ = starting_model(TrainingConfig(method="full"), 0, 1, str(BASE), str(BASE))
        work = tmp_path / "work" / f"{checkpoints.name}-{steps}"
        result = fit(model, tok, rows, max_steps=steps, output_dir=str(work),
                     learning_rate=1e-3, batch_size=2, max_length=MAX_LENGTH,
                     checkpoints=CheckpointPlan(url=str(checkpoints), every=every))
        assert result.steps == steps
        return model, result.mean_loss

    model, whole = run(4, tmp_path / "whole", every=100)
    # back on the CPU, embeddings tied again (moving to the devices parts them), and it learned
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert model.lm_head.weight is model.model.embed_tokens.weight
    model.save_pretrained(tmp_path / "full")
    assert mean_loss(AutoModelForCausalLM.from_pretrained(tmp_path / "full"), tok, rows) < 0.8 * before

    run(2, tmp_path / "stopped", every=2)  # stands for a run stopped after its step-2 checkpoint
    assert sorted(p.name for p in (tmp_path / "stopped").iterdir()) == ["checkpoint-2"]
    _, resumed = run(4, tmp_path / "stopped", every=2)
    # the resumed run's mean covers steps 1-2 (from the checkpoint's state) and 3-4, trained from the restored
    # weights and optimizer: the same as the run that never stopped
    assert resumed == pytest.approx(whole, rel=1e-5)


def test_deepspeed_is_refused_on_xla(tmp_path: Path) -> None:
    from components.core.errors import StarError

    model, tok, _ = starting_model(TrainingConfig(method="lora"), 0, 1, str(BASE), str(BASE))
    with pytest.raises(StarError, match="launcher to none"):
        fit(model, tok, sums(2, seed=1), max_steps=1, output_dir=str(tmp_path), learning_rate=1e-3, batch_size=1,
            deepspeed={"zero_optimization": {"stage": 2}})
