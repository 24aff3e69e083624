"""Step: fine-tune on the kept rationales. Every iteration starts again from the base model (the paper's
choice) unless `continue_from_previous` is set. LoRA through peft by default, full fine-tuning as an option.
Loss falls on rationale and answer tokens only. The number of steps follows the configured schedule."""

import json
import shutil
import tempfile
from pathlib import Path

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.core.artifact_files import FINETUNE, SET_STATS, SKIPPED, TRAIN_STATS
from components.core.rows import TrainExample, TrainStats, read_rows
from components.core.seeds import training_seed
from components.settings.steps import TrainSettings
from components.training import xla
from components.training.checkpoints import CheckpointPlan
from components.training.fit import FitResult
from components.training.starting_model import StartingPoint, trained_from


def checkpoint_plan(settings: TrainSettings, iteration: int, finetune_dir: str) -> CheckpointPlan | None:
    """Where this train step's resumable checkpoints go: one folder per run name, iteration and inputs (training
    settings and kept set), so a retried or resumed step finds its own and never another run's. None: no
    location configured."""
    from components.storage import file_sha256, join_location
    from components.training.checkpoints import run_key

    t = settings.training
    location = t.checkpoint_location()
    if location is None:
        return None
    key = run_key(settings.model_dump_json(), str(iteration), file_sha256(Path(finetune_dir) / FINETUNE))
    url = join_location(location, f"{settings.run_name}/iteration-{iteration}-{key}")
    return CheckpointPlan(url=url, every=t.checkpoint_every, storage=settings.storage)


def train_in_process(settings: TrainSettings, iteration: int, examples: list[TrainExample], steps: int,
                     plan: CheckpointPlan | None, base_dir: str, previous_dir: str, out: Path
                     ) -> tuple[FitResult, StartingPoint]:
    """One process on this pod's CPU or GPU (transformers' Trainer)."""
    from components.training.fit import cpu_bf16, fit
    from components.training.starting_model import starting_model

    t = settings.training
    model, tok, start = starting_model(t, settings.seed, iteration, base_dir, previous_dir)
    with tempfile.TemporaryDirectory() as work:
        result = fit(
            model, tok, examples, max_steps=steps, output_dir=work, learning_rate=t.learning_rate,
            batch_size=t.batch_size, gradient_accumulation_steps=t.gradient_accumulation_steps,
            max_length=t.max_length, warmup_ratio=t.warmup_ratio, lr_schedule=t.lr_schedule,
            weight_decay=t.weight_decay, seed=training_seed(settings.seed, iteration),
            label=f"iteration {iteration} · train", checkpoints=plan, cpu_bf16=cpu_bf16(t.cpu_precision),
        )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if t.method == "full":
        tok.save_pretrained(out)
    return result, start


def train_distributed(settings: TrainSettings, iteration: int, finetune_dir: str, base_dir: str, previous_dir: str,
                      out_dir: str, steps: int) -> tuple[FitResult, StartingPoint]:
    """DeepSpeed ZeRO through torchrun/deepspeed over this pod's GPUs, or a TrainJob/PyTorchJob over nodes; either
    way its ranks checkpoint to, and resume from, the same place as a single-process step."""
    from components.training.deepspeed_config import deepspeed_config
    from components.training.launcher import launch
    from components.training.worker import WorkerSpec

    t = settings.training
    d = t.distributed
    ds = deepspeed_config(d, batch_size=t.batch_size, grad_accum=t.gradient_accumulation_steps,
                          learning_rate=t.learning_rate, weight_decay=t.weight_decay)
    with tempfile.TemporaryDirectory() as work:
        spec = WorkerSpec(
            training=t, seed=settings.seed, storage=settings.storage, iteration=iteration,
            examples=str(Path(finetune_dir) / FINETUNE), base_dir=base_dir, previous_dir=previous_dir,
            out_dir=out_dir, result=str(Path(work) / "result.json"), max_steps=steps, deepspeed=ds,
            label=f"iteration {iteration} · train", checkpoints=checkpoint_plan(settings, iteration, finetune_dir),
        )
        res = launch(d, spec, work, job=settings.job)
    return FitResult(steps=res.steps, mean_loss=res.mean_loss), trained_from(t.continue_from_previous, base_dir,
                                                                              previous_dir)


def train(settings: TrainSettings, iteration: int, finetune_dir: str, base_dir: str, previous_dir: str, out_dir: str,
          active: bool = True) -> TrainStats | None:
    """Train iteration `iteration`'s model into `out_dir`. `active=False` (an early stop before this iteration):
    write only a marker, load nothing."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not active:
        (out / SKIPPED).write_text(json.dumps({"iteration": iteration, "reason": "early stop"}))
        return None
    t = settings.training
    examples = read_rows(Path(finetune_dir) / FINETUNE, TrainExample)
    d = t.distributed
    # on a TPU host (XLA), one process trains over all its chips; the compiled programs persist between steps
    with xla.session(t.compile_cache_location(), settings.storage) as xla_devices:
        world = max(1, xla_devices)
        if d.launcher != "none":
            from components.training.launcher import resolve_nproc

            world = d.nodes * resolve_nproc(d)
        steps = t.schedule.steps(iteration, len(examples), t.batch_size * t.gradient_accumulation_steps * world)
        if d.launcher == "none" or not examples or steps <= 0:
            plan = checkpoint_plan(settings, iteration, finetune_dir)
            result, start = train_in_process(settings, iteration, examples, steps, plan, base_dir, previous_dir, out)
        else:
            result, start = train_distributed(settings, iteration, finetune_dir, base_dir, previous_dir, out_dir,
                                              steps)
    stats = TrainStats(train_steps=result.steps, train_loss=result.mean_loss, trained_from=start,
                       method=t.method)
    (out / TRAIN_STATS).write_text(stats.model_dump_json(indent=2))
    shutil.copy(Path(finetune_dir) / SET_STATS, out / SET_STATS)
    loss = f"{result.mean_loss:.4f}" if result.mean_loss is not None else "n/a"
    print(f"iteration {iteration}: trained {result.steps} steps from {start} on {len(examples)} "
          f"rationales, mean loss {loss}")
    return stats


def train_op(
    settings: str,
    iteration: int,
    active: bool,
    finetune_set: Input[Dataset],
    base_model: Input[Model],
    previous: Input[Model],
    model: Output[Model],
    metrics: Output[Metrics],
):
    from components.settings.steps import TrainSettings
    from components.step_io import log_metrics
    from components.train import train

    stats = train(TrainSettings.load(settings), iteration, finetune_set.path, base_model.path, previous.path,
                  model.path, active)
    values: dict[str, float] = {}
    if stats is not None:
        values["train_steps"] = stats.train_steps
        if stats.train_loss is not None:
            values["train_loss"] = stats.train_loss
        model.metadata.update({"iteration": iteration, "method": stats.method})
    log_metrics(metrics, values)
