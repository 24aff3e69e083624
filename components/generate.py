"""Step: generate rationales for every training question with the previous iteration's model, and score
them with the task's answer check (the filter: `correct` marks the rationales STaR keeps)."""

from collections.abc import Iterator, Sequence
from pathlib import Path

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.artifacts import ATTEMPTS, EXAMPLES
from components.backends.sampling import SamplingConfig
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


CHUNK_QUESTIONS = 4096  # questions generated (and their attempts held) at a time


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
    label = f"iteration {iteration} · generate" + (f" · shard {shard}" if num_shards > 1 else "")
    solved_ids: set[str] = set()
    parts = max(1, -(-len(examples) // CHUNK_QUESTIONS))

    def attempts() -> Iterator[Attempt]:
        """Generated and scored a chunk at a time and written as they come, so the attempts of all questions
        are never held at once. Chunk k samples with its own seed (chunk 0 with the shard's)."""
        for k in range(parts):
            part = slice(k * CHUNK_QUESTIONS, (k + 1) * CHUNK_QUESTIONS)
            sampling: SamplingConfig = gen.sampling(generation_seed(config.seed, iteration, 0, shard) + k * 1_000_003)
            outputs = generator.generate(prefix, questions[part], sampling, task.stop,
                                         label=label + (f" · part {k + 1}/{parts}" if parts > 1 else ""))
            for a in score(task, examples[part], outputs, source="generation", saved_prompts=questions[part],
                           direct=gen.direct):
                if a.correct:
                    solved_ids.add(a.id)
                yield a

    write_rows(Path(out_dir) / ATTEMPTS, attempts())
    solved = len(solved_ids)
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
