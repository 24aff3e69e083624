"""Step: generate and rationalize one shard of the training questions with the previous iteration's model.

1. Generate a rationale (or `num_samples` of them) for every question and score it with the task's answer
   check: `correct` marks the rationales STaR keeps (the filter).
2. Rationalize: each question no generated rationale solved gets, with probability `p_rationalization`, a second
   try with the correct final answer as a hint. A rationale that now reaches the right answer is saved with the
   hint-free prompt, as if no hint had been given (unless `p_show_hint_save` says otherwise).

Both run in one task, so the shard loads its model (a vLLM engine on a cluster) once per iteration."""

import functools
import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.core.artifact_files import ATTEMPTS, EXAMPLES, RATIONALIZATIONS
from components.core.rows import Attempt, Example, Source, iter_rows, write_rows
from components.core.seeds import Stage, chunk_seed, generation_seed
from components.settings.steps import GenerateSettings
from components.tasks.base import Task

CHUNK_QUESTIONS = 1024  # questions generated (and their attempts held) at a time: a 16k shard peaks as a 1k one


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


def shard_rows(path: Path, shard: int, num_shards: int) -> Iterator[Example]:
    """The examples of a file one generation shard handles (every num_shards-th, so shards are balanced), read as
    they come (the file is never held whole)."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is outside 0..{num_shards - 1}")
    return itertools.islice(iter_rows(path, Example), shard, None, num_shards)


def count_shard_rows(path: Path, shard: int, num_shards: int) -> int:
    """How many examples `shard_rows` yields, counted without parsing them."""
    with path.open(encoding="utf-8") as f:
        total = sum(1 for line in f if line.strip())
    return len(range(shard, total, num_shards))


def generate(settings: GenerateSettings, task: Task, generator, iteration: int, shard: int,
             examples: Iterable[Example], out: Path, label: str, total: int | None = None) -> set[str]:
    """Write the scored attempts of every question to `out`; return the ids of the questions some attempt solved.
    The examples are taken `CHUNK_QUESTIONS` at a time (they may be a stream: only one chunk's questions and
    attempts are held); chunk k samples with its own seed (chunk 0 with the shard's). `total`, the number of
    examples if known, only labels the progress."""
    gen = settings.generation
    prefix = task.prefix(hint=False, direct=gen.direct, use_few_shot=gen.uses_few_shot(iteration))
    solved: set[str] = set()
    if total is None and isinstance(examples, Sequence):
        total = len(examples)
    parts = max(1, -(-total // CHUNK_QUESTIONS)) if total is not None else None  # None: not known
    shard_seed = generation_seed(settings.seed, iteration, Stage.GENERATION, shard)

    def attempts() -> Iterator[Attempt]:
        """Generated and scored a chunk at a time and written as they come, so the attempts of all questions
        are never held at once."""
        stream = iter(examples)
        for k in itertools.count():
            chunk = list(itertools.islice(stream, CHUNK_QUESTIONS))
            if not chunk:
                break
            questions = [task.question(e, hint=False, direct=gen.direct) for e in chunk]
            of_parts = "" if parts == 1 else f" · part {k + 1}" + (f"/{parts}" if parts else "")
            outputs = generator.generate(prefix, questions, gen.sampling(chunk_seed(shard_seed, k)), task.stop,
                                         label=label + of_parts)
            for a in score(task, chunk, outputs, source="generation", saved_prompts=questions, direct=gen.direct):
                if a.correct:
                    solved.add(a.id)
                yield a

    write_rows(out, attempts())
    return solved


def rationalize(settings: GenerateSettings, task: Task, load_generator, iteration: int, shard: int,
                failed: Iterable[Example], out: Path, label: str) -> tuple[int, int]:
    """Rationalize the failed questions (each with probability `p_rationalization`; they may be a stream, only
    the chosen ones are held) and write the scored attempts to `out`; return (questions rationalized, questions
    solved with the hint)."""
    gen, rat = settings.generation, settings.rationalization
    rng = random.Random(generation_seed(settings.seed, iteration, Stage.RATIONALIZATION_CHOICE, shard))
    chosen = [e for e in failed if rng.random() < rat.p_rationalization]
    attempts: list[Attempt] = []
    if chosen:
        prefix = task.prefix(hint=True, direct=gen.direct, use_few_shot=gen.uses_few_shot(iteration))
        hinted = [task.question(e, hint=True, direct=gen.direct) for e in chosen]
        saved = [
            h if rng.random() < rat.p_show_hint_save else task.question(e, hint=False, direct=gen.direct)
            for e, h in zip(chosen, hinted, strict=True)
        ]
        sampling = gen.sampling(generation_seed(settings.seed, iteration, Stage.RATIONALIZATION, shard))
        outputs = load_generator().generate(prefix, hinted, sampling, task.stop, label=label)
        attempts = score(task, chosen, outputs, source="rationalization", saved_prompts=saved, direct=gen.direct)
    write_rows(out, attempts)
    return len(chosen), len({a.id for a in attempts if a.correct})


def generate_shard(
    settings: GenerateSettings, iteration: int, train_dir: str, base_dir: str, model_dir: str, out_dir: str,
    shard: int = 0, num_shards: int = 1, active: bool = True,
) -> dict[str, float]:
    """Generation, then rationalization of what generation failed, for one shard; both files in `out_dir`.
    `active=False` (an early stop before this iteration): write empty files without loading a model."""
    from components.generation import load_generator
    from components.tasks import make_task

    out = Path(out_dir)
    if not active:
        write_rows(out / ATTEMPTS, [])
        write_rows(out / RATIONALIZATIONS, [])
        return {"questions": 0, "solved": 0, "solved_share": 0.0, "failed": 0, "rationalized": 0,
                "rationalization_solved": 0}
    task = make_task(settings.task)
    gen = settings.generation
    path = Path(train_dir) / EXAMPLES
    questions = count_shard_rows(path, shard, num_shards) if path.exists() else None
    of_shards = f" · shard {shard}" if num_shards > 1 else ""

    @functools.cache
    def generator():
        """The shard's model, loaded once for generation and rationalization."""
        return load_generator(gen.backend, base_dir, model_dir, batch_size=gen.batch_size, vllm=gen.vllm)

    solved = generate(settings, task, generator(), iteration, shard, shard_rows(path, shard, num_shards),
                      out / ATTEMPTS, f"iteration {iteration} · generate{of_shards}", total=questions)
    failed = _Counted(e for e in shard_rows(path, shard, num_shards) if e.id not in solved)
    rationalized, fixed = rationalize(settings, task, generator, iteration, shard, failed, out / RATIONALIZATIONS,
                                      f"iteration {iteration} · rationalize{of_shards}")
    total = questions or 0
    print(f"iteration {iteration}: generation solved {len(solved)}/{total} training questions"
          + (f" (shard {shard} of {num_shards})" if num_shards > 1 else ""))
    print(f"iteration {iteration}: rationalization solved {fixed}/{rationalized} of {failed.count} failed questions")
    return {"questions": total, "solved": len(solved), "solved_share": len(solved) / total if total else 0.0,
            "failed": failed.count, "rationalized": rationalized, "rationalization_solved": fixed}


class _Counted:
    """An iterable that counts what went through it."""

    def __init__(self, items: Iterable[Example]) -> None:
        self.items, self.count = items, 0

    def __iter__(self) -> Iterator[Example]:
        for item in self.items:
            self.count += 1
            yield item


def generate_op(
    settings: str,
    iteration: int,
    shard: int,
    num_shards: int,
    active: bool,
    train: Input[Dataset],
    base_model: Input[Model],
    model: Input[Model],
    attempts: Output[Dataset],
    metrics: Output[Metrics],
):
    from components.generate import generate_shard
    from components.settings.steps import GenerateSettings
    from components.step_io import log_metrics

    stats = generate_shard(GenerateSettings.load(settings), iteration, train.path, base_model.path, model.path,
                           attempts.path, shard, num_shards, active)
    log_metrics(metrics, stats)
