"""Step: fine-tune on the kept rationales. Every iteration starts again from the base model (the paper's
choice) unless `continue_from_previous` is set. LoRA through peft by default, full fine-tuning as an option.
Loss falls on rationale and answer tokens only. The number of steps follows the configured schedule."""

import shutil
import tempfile
from pathlib import Path

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.artifacts import FINETUNE, SET_STATS, TRAIN_STATS
from components.rows import TrainExample, TrainStats, read_rows


def trained_from(continue_from_previous: bool, base_dir: str, previous_dir: str) -> str:
    """"previous" when this iteration starts from the previous iteration's weights, else "base" (the paper's
    choice, and always in iteration 1, whose previous model is the base model itself)."""
    same = Path(previous_dir).resolve() == Path(base_dir).resolve()
    return "previous" if continue_from_previous and not same else "base"


def initial_model(config_json: str, iteration: int, base_dir: str, previous_dir: str):
    """The model training starts from, made trainable: base (+ a fresh LoRA adapter, initialized from the run's
    seed and the iteration) or the previous iteration's weights when `continue_from_previous` is set."""
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    from components.policy import is_adapter, load_policy
    from pipelines.config import RunConfig

    config = RunConfig.from_json(config_json)
    t = config.training
    start = trained_from(t.continue_from_previous, base_dir, previous_dir)
    if start == "previous":
        if t.method == "lora" and not is_adapter(previous_dir):
            raise ValueError(f"continue_from_previous with LoRA needs an adapter in {previous_dir}")
        model, tok = load_policy(base_dir, previous_dir, trainable=True)
    else:
        model, tok = load_policy(base_dir, base_dir, trainable=True)
        if t.method == "lora":
            set_seed(config.seed + iteration)
            lora = LoraConfig(
                r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                target_modules=t.lora_target_modules, task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, lora)
    model.train()
    return model, tok, start


def checkpoint_plan(config_json: str, iteration: int, finetune_dir: str):
    """Where this train step's checkpoints go: one folder per run name, iteration and inputs (config and kept
    set), so a retried or resumed step finds its own and never another run's. None: no location configured."""
    from components.checkpoints import CheckpointPlan, join, run_key
    from components.storage import file_sha256
    from pipelines.config import RunConfig

    config = RunConfig.from_json(config_json)
    t = config.training
    if t.checkpoints is None:
        return None
    key = run_key(config_json, str(iteration), file_sha256(Path(finetune_dir) / FINETUNE))
    url = join(t.checkpoints, f"{config.name}/iteration-{iteration}-{key}")
    return CheckpointPlan(url=url, every=t.checkpoint_every, storage=config.storage)


def train_distributed(config, iteration: int, finetune_dir: str, base_dir: str, previous_dir: str, out_dir: str,
                      steps: int):
    """DeepSpeed ZeRO through torchrun/deepspeed over this pod's GPUs, or a TrainJob/PyTorchJob over nodes."""
    from components.distributed.deepspeed_config import deepspeed_config
    from components.distributed.launcher import launch
    from components.distributed.trainjob import JobPod, JobSettings, SecretEnv
    from components.distributed.worker import WorkerSpec
    from components.finetune import FitResult

    t, cluster = config.training, config.cluster
    d = t.distributed
    ds = deepspeed_config(d, batch_size=t.batch_size, grad_accum=t.gradient_accumulation_steps,
                          learning_rate=t.learning_rate, weight_decay=t.weight_decay)
    job = None
    if d.nodes > 1:
        job = JobSettings(
            image=d.job_image or cluster.images.ref("train_gpu"),
            pod=JobPod.model_validate(cluster.placement.train.model_dump(include=set(JobPod.model_fields))),
            secrets=[SecretEnv(secret=cluster.storage.secret, keys=cluster.storage.keys)] if cluster.storage.secret
            else [],
            run_name=config.name,
        )
    with tempfile.TemporaryDirectory() as work:
        spec = WorkerSpec(
            config_json=config.to_json(), iteration=iteration, examples=str(Path(finetune_dir) / FINETUNE),
            base_dir=base_dir, previous_dir=previous_dir, out_dir=out_dir, result=str(Path(work) / "result.json"),
            max_steps=steps, deepspeed=ds, label=f"iteration {iteration} · train",
        )
        res = launch(d, spec, work, job=job)
    start = trained_from(t.continue_from_previous, base_dir, previous_dir)
    return FitResult(steps=res.steps, mean_loss=res.mean_loss), start


def train(
    config_json: str, iteration: int, finetune_dir: str, base_dir: str, previous_dir: str, out_dir: str
) -> TrainStats:
    from components.finetune import fit
    from pipelines.config import RunConfig

    config = RunConfig.from_json(config_json)
    t = config.training
    examples = read_rows(Path(finetune_dir) / FINETUNE, TrainExample)
    d = t.distributed
    world = 1
    if d.launcher != "none":
        from components.distributed.launcher import resolve_nproc

        world = d.nodes * resolve_nproc(d)
    steps = t.schedule.steps(iteration, len(examples), t.batch_size * t.gradient_accumulation_steps * world)
    if d.launcher == "none" or not examples or steps <= 0:
        model, tok, start = initial_model(config_json, iteration, base_dir, previous_dir)
        with tempfile.TemporaryDirectory() as work:
            result = fit(
                model, tok, examples, max_steps=steps, output_dir=work, learning_rate=t.learning_rate,
                batch_size=t.batch_size, gradient_accumulation_steps=t.gradient_accumulation_steps,
                max_length=t.max_length, warmup_ratio=t.warmup_ratio, lr_schedule=t.lr_schedule,
                weight_decay=t.weight_decay,
                seed=config.seed + iteration, label=f"iteration {iteration} · train",
                checkpoints=checkpoint_plan(config_json, iteration, finetune_dir),
            )
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        if t.method == "full":
            tok.save_pretrained(out)
    else:
        result, start = train_distributed(
            config, iteration, finetune_dir, base_dir, previous_dir, out_dir, steps
        )
        out = Path(out_dir)
    stats = TrainStats(train_steps=result.steps, train_loss=result.mean_loss, trained_from=start,
                       method=t.method)
    (out / TRAIN_STATS).write_text(stats.model_dump_json(indent=2))
    shutil.copy(Path(finetune_dir) / SET_STATS, out / SET_STATS)
    loss = f"{result.mean_loss:.4f}" if result.mean_loss is not None else "n/a"
    print(f"iteration {iteration}: trained {result.steps} steps from {start} on {len(examples)} "
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
    from components.step_metrics import log_metrics
    from components.train import train

    stats = train(config_json, iteration, finetune_set.path, base_model.path, previous.path, checkpoint.path)
    values: dict[str, float] = {"train_steps": stats.train_steps}
    if stats.train_loss is not None:
        values["train_loss"] = stats.train_loss
    log_metrics(metrics, values)
    checkpoint.metadata.update({"iteration": iteration, "method": stats.method})
