"""Causal-LM fine-tuning on (prompt, completion) pairs with transformers' Trainer.

Loss falls on the completion (rationale + answer + end of text) only: prompt tokens get label -100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from components.progress import ProgressLine
from components.rows import TrainExample

IGNORE = -100


def encode_example(
    tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str, max_length: int
) -> dict[str, list[int]]:
    """input_ids = prompt + completion + eos; labels mask the prompt. Over-long rows keep their end."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = p + c
    labels = [IGNORE] * len(p) + c
    if len(ids) > max_length:
        ids, labels = ids[-max_length:], labels[-max_length:]
    return {"input_ids": ids, "labels": labels}


@dataclass
class CompletionCollator:
    pad_token_id: int

    def __call__(self, features: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


class _ProgressCallback(TrainerCallback):
    def __init__(self, label: str, total: int) -> None:
        self.bar = ProgressLine(label, total, unit="step")
        self.loss: float | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.bar.update(1, extra=f"loss {self.loss:.4f}" if self.loss is not None else "")


@dataclass
class FitResult:
    steps: int
    mean_loss: float | None


def fit(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TrainExample],
    *,
    max_steps: int,
    output_dir: str,
    learning_rate: float,
    batch_size: int,
    gradient_accumulation_steps: int = 1,
    max_length: int = 1024,
    warmup_ratio: float = 0.0,
    weight_decay: float = 0.0,
    seed: int = 0,
    label: str = "train",
    deepspeed: dict | None = None,
) -> FitResult:
    """Train `model` in place for exactly `max_steps` optimizer steps (cycling over `examples`). `deepspeed`: a
    DeepSpeed config (`components.distributed.deepspeed_config`) when launched over several ranks; bf16 follows
    its `bf16.enabled`, as the Trainer requires the two to agree."""
    if max_steps <= 0 or not examples:
        return FitResult(steps=0, mean_loss=None)
    rows = [encode_example(tokenizer, e.prompt, e.completion, max_length) for e in examples]
    args = TrainingArguments(
        output_dir=output_dir,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
        learning_rate=learning_rate,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=math.ceil(warmup_ratio * max_steps),
        weight_decay=weight_decay,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,
        deepspeed=deepspeed,
        bf16=bool(deepspeed and (deepspeed.get("bf16") or {}).get("enabled") is True),
    )
    progress = _ProgressCallback(label, max_steps)
    trainer = Trainer(
        model=model, args=args, train_dataset=_ListDataset(rows),
        data_collator=CompletionCollator(tokenizer.pad_token_id), callbacks=[progress],
    )
    trainer.remove_callback(PrinterCallback)  # our progress line reports the loss instead of a dict per step
    out = trainer.train()
    return FitResult(steps=int(out.global_step), mean_loss=float(out.training_loss))
