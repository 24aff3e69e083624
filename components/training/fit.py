"""Causal-LM fine-tuning on (prompt, completion) pairs with transformers' Trainer.

Loss falls on the completion (rationale + answer + end of text) only: prompt tokens get label -100.
On CPU or GPU (one process, or a DeepSpeed rank) the Trainer runs as usual; with torch_xla on a TPU host it runs
SPMD over every chip with FSDPv2 (`components.training.xla`), on the very same encoded rows.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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

from components.core.errors import StarError
from components.core.progress import ProgressLine
from components.core.rows import TrainExample
from components.core.seeds import epoch_seed
from components.training import xla
from components.training.checkpoints import CheckpointPlan
from components.training.cpu_passes import ConcurrentPasses
from components.training.lr_schedule import LrSchedule, trainer_scheduler
from components.training.trainer_state import CheckpointCallback, StopRequest, fetch_latest

IGNORE = -100
#: On CPU, the most padded tokens one forward/backward pass takes: a step's batch goes through in micro-batches
#: of this size and their gradients add up to the step's, so activation memory grows with the pass, not the step
#: (measurements: benchmarks/RESULTS.md, "Design choices"). The update is the same: the Trainer divides each
#: micro-batch's summed loss by the completion tokens of the whole step.
CPU_MICRO_BATCH_TOKENS = 1024
#: On CPU (one process): how many of a step's passes run side by side, each on its share of the threads; the
#: token budget above is shared between them, so activation memory stays that of one 1k-token pass.
PASSES_SIDE_BY_SIDE = 2
#: The attention function bf16 training on CPU uses: torch's SDPA in float32 (its bf16 backward on CPU is several
#: times slower than the float32 one, benchmarks/RESULTS.md), registered with transformers under this name.
FP32_ATTENTION = "star_sdpa_fp32"


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AMX or AVX-512 BF16). A torch without
    `torch.cpu.get_capabilities` (the TPU image's 2.9) cannot tell: no."""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    caps = get_capabilities() if get_capabilities is not None else {}
    return bool(caps.get("amx_bf16") or caps.get("avx512_bf16"))


def cpu_bf16(precision: str) -> bool:
    """`training.cpu_precision` resolved on this machine."""
    return precision == "bf16" or (precision == "auto" and cpu_has_bf16())


def _sdpa_fp32(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    with torch.autocast("cpu", enabled=False):
        out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                              **kwargs)
    return out.to(query.dtype), weights


@contextlib.contextmanager
def _fp32_attention(model: PreTrainedModel) -> Iterator[None]:
    """Attention in float32 while the model trains under bf16 autocast; the model's own setting after."""
    from transformers import AttentionInterface

    AttentionInterface.register(FP32_ATTENTION, _sdpa_fp32)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    before = base.config._attn_implementation
    base.set_attn_implementation(FP32_ATTENTION)
    try:
        yield
    finally:
        base.set_attn_implementation(before)


class Preempted(StarError):
    """Training was asked to stop (SIGTERM) and left a checkpoint to continue from."""


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
    #: Pad each batch to the smallest of these lengths that holds its longest row (XLA: a few fixed shapes);
    #: None pads to the longest row.
    buckets: list[int] | None = None

    def __call__(self, features: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        if self.buckets is not None:
            width = xla.bucket_for(width, self.buckets)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _single_process() -> bool:
    """Not one rank of several (torchrun, DeepSpeed): their gradients are all-reduced by backward's hooks."""
    return int(os.environ.get("WORLD_SIZE", "1")) == 1


def micro_batch_rows(batch_size: int, longest: int, max_tokens: int) -> int:
    """The most rows per pass that divide `batch_size` evenly (so micro-batches never straddle two steps) and
    keep a pass of rows `longest` tokens long within `max_tokens`; at least 1."""
    most = max(1, max_tokens // max(1, longest))
    return max(d for d in range(1, min(batch_size, most) + 1) if batch_size % d == 0)


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


class EpochSeededStepSampler(torch.utils.data.Sampler[int]):
    """Random batches, each yielded longest row first, in an order drawn from `seed` and the epoch alone (not
    the global RNG): a run resumed from a checkpoint mid-epoch replays exactly the batches the stopped run would
    have seen.

    A step's `batch_size` rows are a random draw, so a step mixes short and long rows; sorted within the step,
    the micro-batches it goes through in (CPU passes, gradient accumulation) each pad only to their own longest
    row. Length-grouped batches (transformers' `group_by_length`) train far worse where length follows the kind of
    example, as a sum's digit count does (benchmarks/RESULTS.md, "Design choices").

    `full_steps` (XLA): the epoch's last, short step is filled with rows from its start, so every step has the
    same batch size."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int, full_steps: bool = False) -> None:
        self.batch_size, self.lengths, self.seed, self.epoch = batch_size, lengths, seed, 0
        self.full_steps = full_steps

    def __len__(self) -> int:
        n = len(self.lengths)
        return n + (-n % self.batch_size if self.full_steps else 0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        if self.full_steps:
            order = xla.fill_steps(order, self.batch_size)
        steps = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return iter([i for step in steps for i in sorted(step, key=lambda i: -self.lengths[i])])


class _Trainer(Trainer):
    _step_sampler: EpochSeededStepSampler | None = None
    #: On CPU: the step's passes side by side (the batch the Trainer hands over is the whole step's).
    cpu_passes: ConcurrentPasses | None = None

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        if self.cpu_passes is None:
            return super().training_step(model, inputs, num_items_in_batch)
        # what the Trainer's own step does on one CPU process, pass by pass: the loss of each pass is its completion
        # tokens' summed loss over the whole step's (num_items_in_batch), so the passes add up to the step's loss
        model.train()
        inputs = self._prepare_inputs(inputs)

        def loss_of(part: dict[str, torch.Tensor]) -> torch.Tensor:
            with self.compute_loss_context_manager():
                loss = self.compute_loss(model, part, num_items_in_batch=num_items_in_batch)
            return loss if num_items_in_batch is not None else loss / self.current_gradient_accumulation_steps

        return self.cpu_passes.run(model, inputs, loss_of)

    def _get_train_sampler(self, train_dataset: Any = None) -> EpochSeededStepSampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        self._step_sampler = EpochSeededStepSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            [len(row["input_ids"]) for row in dataset.rows],
            self.args.data_seed if self.args.data_seed is not None else self.args.seed,
            full_steps=self.is_fsdp_xla_enabled,
        )
        return self._step_sampler

    def _run_epoch(self, *args: Any, **kwargs: Any) -> Any:
        # Tell the sampler its epoch ourselves: on several ranks accelerate wraps it in a BatchSamplerShard, and a run
        # resumed mid-epoch wraps that again to skip the batches already trained, and the Trainer's own set_epoch
        # reaches neither; the sampler of the new process then replayed epoch 0's order in a later epoch
        if self._step_sampler is not None and "epoch" in kwargs:
            self._step_sampler.set_epoch(kwargs["epoch"])
        return super()._run_epoch(*args, **kwargs)

    def _wrap_model(self, model: Any, training: bool = True, dataloader: Any = None) -> Any:
        wrapped = super()._wrap_model(model, training, dataloader)
        if training and self.is_fsdp_xla_v2_enabled and wrapped is not model:
            xla.retie(wrapped)
            # transformers 5.23 delays the optimizer until an XLA FSDP model is wrapped, then never creates it (the
            # wrapped model is not `self.model`, so the branch that would is skipped): create it on the wrapped model
            if self.optimizer is None:
                self.create_optimizer(wrapped)
        return wrapped

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if not self.is_fsdp_xla_v2_enabled:
            return super().save_model(output_dir, _internal_call)
        xla.save_checkpoint_weights(self.model, output_dir or self.args.output_dir)


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
    #: The learning rate of every step, as the Trainer logged it.
    learning_rates: list[float] = field(default_factory=list)


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
    lr_schedule: LrSchedule = "constant",
    weight_decay: float = 0.0,
    seed: int = 0,
    label: str = "train",
    deepspeed: dict | None = None,
    checkpoints: CheckpointPlan | None = None,
    cpu_bf16: bool = False,
) -> FitResult:
    """Train `model` in place for exactly `max_steps` optimizer steps (cycling over `examples`). `deepspeed`: a
    DeepSpeed config (`components.training.deepspeed_config`) when launched over several ranks; bf16 follows
    its `bf16.enabled`, as the Trainer requires the two to agree. `checkpoints`: where resumable checkpoints go;
    training continues from the last complete one there, and SIGTERM saves one and raises `Preempted`.

    Each optimizer step takes `batch_size * gradient_accumulation_steps` rows per device. On CPU (without
    DeepSpeed) a step's `batch_size` rows go through in passes of at most `CPU_MICRO_BATCH_TOKENS` padded
    tokens, accumulated into the same update; the rows of each step and the loss are unchanged. On XLA
    (`components.training.xla.on_xla()`) one process trains over all N devices: a pass takes `batch_size * N`
    rows, sharded over the devices, padded to a fixed bucket length, in bf16; the model ends on the CPU.
    `cpu_bf16` (CPU without DeepSpeed): the linear layers run under bf16 autocast, attention, norms and the loss in
    float32, and the weights and optimizer stay float32 (`cpu_has_bf16()` tells whether the CPU has it in
    hardware)."""
    if max_steps <= 0 or not examples:
        return FitResult(steps=0, mean_loss=None)
    rows = [encode_example(tokenizer, e.prompt, e.completion, max_length) for e in examples]
    every = checkpoints.every if checkpoints else 0
    on_xla = xla.on_xla()
    if on_xla and deepspeed is not None:
        raise StarError("DeepSpeed does not run on XLA: on a TPU host set training.distributed.launcher to none "
                        "(training spreads over the host's chips by itself).")
    on_cpu = not on_xla and not torch.cuda.is_available()
    micro, accumulate, buckets = batch_size, gradient_accumulation_steps, None
    device_args: dict[str, Any] = {
        "use_cpu": on_cpu, "deepspeed": deepspeed,
        "bf16": bool(deepspeed and (deepspeed.get("bf16") or {}).get("enabled") is True),
    }
    if on_xla:
        micro, buckets = batch_size * xla.start(), xla.padding_buckets(max_length)
        device_args = xla.trainer_arguments()
    passes = None
    if on_cpu and deepspeed is None:
        threads = torch.get_num_threads()
        workers = min(PASSES_SIDE_BY_SIDE, threads) if _single_process() else 1
        longest = max(len(r["input_ids"]) for r in rows)
        micro = micro_batch_rows(batch_size, longest, CPU_MICRO_BATCH_TOKENS // max(1, workers))
        accumulate = gradient_accumulation_steps * (batch_size // micro)
        device_args["bf16"] = cpu_bf16
        if workers > 1 and batch_size // micro > 1:
            passes = ConcurrentPasses(micro, min(workers, batch_size // micro), max(1, threads // workers))
            micro, accumulate = batch_size, gradient_accumulation_steps  # the Trainer hands over whole steps
    cpu_autocast = on_cpu and deepspeed is None and cpu_bf16
    args = TrainingArguments(
        output_dir=output_dir,
        max_steps=max_steps,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulate,
        learning_rate=learning_rate,
        lr_scheduler_type=trainer_scheduler(lr_schedule),
        warmup_steps=math.ceil(warmup_ratio * max_steps),
        weight_decay=weight_decay,
        logging_steps=1,
        save_strategy="steps" if every else "no",
        save_steps=every or 500,
        save_total_limit=1,
        report_to=[],
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        remove_unused_columns=False,
        **device_args,
    )
    progress = _ProgressCallback(label, max_steps)
    # SIGTERM becomes a checkpoint-and-stop request only when there is somewhere to checkpoint to; without a plan it
    # keeps its default meaning (end the process), or a `kill` of a plain training run would be ignored
    with (StopRequest() if checkpoints else contextlib.nullcontext()) as stop, (
        _fp32_attention(model) if cpu_autocast else contextlib.nullcontext()
    ):
        saver = CheckpointCallback(checkpoints, stop) if checkpoints and stop else None
        trainer = _Trainer(
            model=model, args=args, train_dataset=_ListDataset(rows),
            data_collator=CompletionCollator(tokenizer.pad_token_id, buckets),
            callbacks=[progress] + ([saver] if saver else []),
        )
        trainer.remove_callback(PrinterCallback)  # our progress line reports the loss instead of a dict per step
        trainer.cpu_passes = passes
        resume = fetch_latest(checkpoints, Path(output_dir)) if checkpoints else None
        if resume is not None:
            print(f"{label}: continuing from {resume.name} of {checkpoints.url}")  # type: ignore[union-attr]
        try:
            trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        finally:
            if passes is not None:
                passes.close()
    if on_xla:
        xla.unwrap_to_cpu(model)
    if saver is not None and saver.stopped_at is not None:
        raise Preempted(
            f"{label}: stopped at step {saver.stopped_at} of {max_steps} on SIGTERM; the checkpoint is in "
            f"{saver.plan.url}, and running the step again continues from it."
        )
    # the mean of the logged per-step losses: a resumed run has them all (trainer state is in the checkpoint)
    logged = [h for h in trainer.state.log_history if "loss" in h]
    losses = [float(h["loss"]) for h in logged]
    return FitResult(steps=int(trainer.state.global_step), mean_loss=sum(losses) / len(losses) if losses else None,
                     learning_rates=[float(h["learning_rate"]) for h in logged if "learning_rate" in h])
