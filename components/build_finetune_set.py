"""Step: build the fine-tuning set from the kept (correct) rationales of generation and rationalization:
de-duplicated, at most `max_per_question` per question, with counts of where the kept rationales came from."""

from pathlib import Path
from typing import List  # noqa: UP035  (KFP reads typing.List in artifact annotations)

from kfp.dsl import Dataset, Input, Metrics, Output

from components.core.artifact_files import ATTEMPTS, EXAMPLES, FINETUNE, RATIONALIZATIONS, SET_STATS
from components.core.rows import Attempt, Example, SetStats, TrainExample, read_rows, write_rows
from components.settings.steps import FinetuneSetSettings


def select_kept(attempts: list[Attempt], max_per_question: int) -> list[TrainExample]:
    """Correct attempts, generation before rationalization, without repeats, capped per question."""
    kept: list[TrainExample] = []
    seen: set[tuple[str, str, str]] = set()
    per_question: dict[str, int] = {}
    for a in sorted(attempts, key=lambda a: (a.source != "generation", a.id, a.sample)):
        if not a.correct:
            continue
        key = (a.id, a.prompt, " ".join(a.completion.split()))
        if key in seen or per_question.get(a.id, 0) >= max_per_question:
            continue
        seen.add(key)
        per_question[a.id] = per_question.get(a.id, 0) + 1
        kept.append(TrainExample(id=a.id, source=a.source, prompt=a.prompt, completion=a.completion))
    return kept


def build_finetune_set(settings: FinetuneSetSettings, train_dir: str, shard_dirs: list[str], out_dir: str) -> SetStats:
    """Merge the shards' attempts (generation and rationalization) into one fine-tuning set."""
    questions = read_rows(Path(train_dir) / EXAMPLES, Example)
    generated = [a for d in shard_dirs for a in read_rows(Path(d) / ATTEMPTS, Attempt)]
    rationalized = [a for d in shard_dirs for a in read_rows(Path(d) / RATIONALIZATIONS, Attempt)]
    kept = select_kept(generated + rationalized, settings.max_per_question)
    by_generation = {a.id for a in generated if a.correct}
    by_rationalization = {a.id for a in rationalized if a.correct} - by_generation
    stats = SetStats(
        train_questions=len(questions),
        solved_by_generation=len(by_generation),
        solved_by_rationalization=len(by_rationalization),
        train_examples=len(kept),
        kept_generation=sum(k.source == "generation" for k in kept),
        kept_rationalization=sum(k.source == "rationalization" for k in kept),
    )
    out = Path(out_dir)
    write_rows(out / FINETUNE, kept)
    (out / SET_STATS).write_text(stats.model_dump_json(indent=2))
    print(
        f"fine-tuning set: {stats.train_examples} rationales ({stats.kept_generation} generated, "
        f"{stats.kept_rationalization} rationalized) for {stats.train_questions} questions"
    )
    return stats


def build_finetune_set_op(
    settings: str,
    train: Input[Dataset],
    attempts: Input[List[Dataset]],  # noqa: UP006
    finetune_set: Output[Dataset],
    metrics: Output[Metrics],
):
    from components.build_finetune_set import build_finetune_set
    from components.settings.steps import FinetuneSetSettings
    from components.step_io import log_metrics

    stats = build_finetune_set(FinetuneSetSettings.load(settings), train.path, [a.path for a in attempts],
                               finetune_set.path)
    log_metrics(metrics, stats.model_dump())
