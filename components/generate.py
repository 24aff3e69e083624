"""Step: generate rationales for every training question with the previous iteration's model, and score
them with the task's answer check (the filter: `correct` marks the rationales STaR keeps)."""

from collections.abc import Sequence
from pathlib import Path

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.artifacts import ATTEMPTS, EXAMPLES
from components.backends.hf import SamplingConfig
from components.rows import Attempt, Example, Source, read_rows, write_rows
from components.tasks.base import Task


def score(
    task: Task,
    examples: Sequence[Example],
    outputs: Sequence[Sequence[str]],
    *,
    source: Source,
    saved_prompts: Sequence[str],
    direct: bool,
) -> list[Attempt]:
    """One Attempt per completion; `saved_prompts[i]` is the prompt kept for fine-tuning on example i."""
    attempts = []
    for ex, outs, prompt in zip(examples, outputs, saved_prompts, strict=True):
        for k, completion in enumerate(outs):
            prediction = task.extract_answer(completion, direct=direct)
            attempts.append(
                Attempt(
                    id=ex.id, group=ex.group, source=source, sample=k, prompt=prompt, completion=completion,
                    prediction=prediction, correct=task.is_correct(prediction, ex.answer),
                )
            )
    return attempts


def uses_few_shot(no_prompt: bool, iteration: int) -> bool:
    """The few-shot prefix is always used by the base model; `no_prompt` drops it after iteration 1."""
    return not (no_prompt and iteration > 1)


def generation_seed(seed: int, iteration: int, stage: int, shard: int = 0) -> int:
    return seed * 100_003 + iteration * 10 + stage + shard * 7_919


def shard_of(rows: list, shard: int, num_shards: int) -> list:
    """The rows one generation shard handles (every num_shards-th, so shards are balanced)."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is outside 0..{num_shards - 1}")
    return rows[shard::num_shards]


def generate_rationales(
    config_json: str, iteration: int, train_dir: str, base_dir: str, policy_dir: str, out_dir: str,
    shard: int = 0, num_shards: int = 1,
) -> dict[str, float]:
    from components.backends import load_generator
    from components.tasks import make_task
    from pipelines.config import RunConfig

    config = RunConfig.from_json(config_json)
    task = make_task(config.task)
    gen = config.generation
    examples = shard_of(read_rows(Path(train_dir) / EXAMPLES, Example), shard, num_shards)
    generator = load_generator(gen, base_dir, policy_dir)
    prefix = task.prefix(hint=False, direct=gen.direct, use_few_shot=uses_few_shot(gen.no_prompt, iteration))
    questions = [task.question(e, hint=False, direct=gen.direct) for e in examples]
    sampling: SamplingConfig = gen.sampling(generation_seed(config.seed, iteration, 0, shard))
    label = f"iteration {iteration} · generate" + (f" · shard {shard}" if num_shards > 1 else "")
    outputs = generator.generate(prefix, questions, sampling, task.stop, label=label)
    attempts = score(task, examples, outputs, source="generation", saved_prompts=questions, direct=gen.direct)
    write_rows(Path(out_dir) / ATTEMPTS, attempts)
    solved = len({a.id for a in attempts if a.correct})
    stats = {"questions": len(examples), "solved": solved, "solved_share": solved / len(examples)}
    print(f"iteration {iteration}: generation solved {solved}/{len(examples)} training questions"
          + (f" (shard {shard} of {num_shards})" if num_shards > 1 else ""))
    return stats


def generate_op(
    config_json: str,
    iteration: int,
    shard: int,
    num_shards: int,
    train: Input[Dataset],
    base_model: Input[Model],
    policy: Input[Model],
    attempts: Output[Dataset],
    metrics: Output[Metrics],
):
    from components.generate import generate_rationales
    from components.step_metrics import log_metrics

    stats = generate_rationales(
        config_json, iteration, train.path, base_model.path, policy.path, attempts.path, shard, num_shards
    )
    log_metrics(metrics, stats)
