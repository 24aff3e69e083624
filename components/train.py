"""Step: fine-tune on the kept rationales. Every iteration starts again from the base model (the paper's
choice) unless `continue_from_previous` is set. LoRA through peft by default, full fine-tuning as an option.
Loss falls on rationale and answer tokens only. The number of steps follows the configured schedule."""

import shutil
import tempfile
from pathlib import Path

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.artifacts import FINETUNE, SET_STATS, TRAIN_STATS
from components.rows import TrainExample, TrainStats, read_rows


def initial_model(config_json: str, base_dir: str, previous_dir: str):
    """The model training starts from, made trainable: base (+ a fresh LoRA adapter) or the previous
    iteration's weights when `continue_from_previous` is set."""
    from peft import LoraConfig, get_peft_model

    from components.policy import is_adapter, load_policy
    from pipelines.config import RunConfig

    config = RunConfig.from_json(config_json)
    t = config.training
    start_from_previous = t.continue_from_previous and Path(previous_dir).resolve() != Path(base_dir).resolve()
    if start_from_previous:
        if t.method == "lora" and not is_adapter(previous_dir):
            raise ValueError(f"continue_from_previous with LoRA needs an adapter in {previous_dir}")
        model, tok = load_policy(base_dir, previous_dir, trainable=True)
    else:
        model, tok = load_policy(base_dir, base_dir, trainable=True)
        if t.method == "lora":
            lora = LoraConfig(
                r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                target_modules=t.lora_target_modules, task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, lora)
    model.train()
    return model, tok, ("previous" if start_from_previous else "base")


def train(
    config_json: str, iteration: int, finetune_dir: str, base_dir: str, previous_dir: str, out_dir: str
) -> TrainStats:
    from components.finetune import fit
    from pipelines.config import RunConfig

    config = RunConfig.from_json(config_json)
    t = config.training
    examples = read_rows(Path(finetune_dir) / FINETUNE, TrainExample)
    steps = t.schedule.steps(iteration, len(examples), t.batch_size * t.gradient_accumulation_steps)
    model, tok, trained_from = initial_model(config_json, base_dir, previous_dir)
    with tempfile.TemporaryDirectory() as work:
        result = fit(
            model, tok, examples, max_steps=steps, output_dir=work, learning_rate=t.learning_rate,
            batch_size=t.batch_size, gradient_accumulation_steps=t.gradient_accumulation_steps,
            max_length=t.max_length, warmup_ratio=t.warmup_ratio, weight_decay=t.weight_decay,
            seed=config.seed + iteration, label=f"iteration {iteration} · train",
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if t.method == "full":
        tok.save_pretrained(out)
    stats = TrainStats(train_steps=result.steps, train_loss=result.mean_loss, trained_from=trained_from,
                       method=t.method)
    (out / TRAIN_STATS).write_text(stats.model_dump_json(indent=2))
    shutil.copy(Path(finetune_dir) / SET_STATS, out / SET_STATS)
    loss = f"{result.mean_loss:.4f}" if result.mean_loss is not None else "n/a"
    print(f"iteration {iteration}: trained {result.steps} steps from {trained_from} on {len(examples)} "
          f"rationales, mean loss {loss}")
    return stats


def train_op(
    config_json: str,
    iteration: int,
    finetune_set: Input[Dataset],
    base_model: Input[Model],
    previous: Input[Model],
    checkpoint: Output[Model],
    metrics: Output[Metrics],
):
    from components.train import train

    stats = train(config_json, iteration, finetune_set.path, base_model.path, previous.path, checkpoint.path)
    metrics.log_metric("train_steps", stats.train_steps)
    if stats.train_loss is not None:
        metrics.log_metric("train_loss", stats.train_loss)
    checkpoint.metadata.update({"iteration": iteration, "method": stats.method})
