"""Step: evaluate an iteration's model greedily on the held-out split and add the iteration's line to the
run history (accuracy overall and per class, and what the model was trained on)."""

from pathlib import Path
from typing import TypeVar

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.artifacts import EVAL_ATTEMPTS, EXAMPLES, HISTORY, SET_STATS, TRAIN_STATS
from components.rows import Attempt, Example, IterationRecord, SetStats, TrainStats, read_rows, write_rows

M = TypeVar("M", SetStats, TrainStats)


def accuracy_by_group(attempts: list[Attempt]) -> dict[str, float]:
    total: dict[str, int] = {}
    right: dict[str, int] = {}
    for a in attempts:
        total[a.group] = total.get(a.group, 0) + 1
        right[a.group] = right.get(a.group, 0) + int(a.correct)
    key = (lambda g: (0, int(g), g)) if all(g.isdigit() for g in total) else (lambda g: (1, 0, g))
    return {g: right[g] / total[g] for g in sorted(total, key=key)}


def pick_samples(attempts: list[Attempt], k: int) -> list[Attempt]:
    """Up to k samples, one per class from the hardest down, correct ones first."""
    by_group: dict[str, list[Attempt]] = {}
    for a in sorted(attempts, key=lambda a: not a.correct):
        by_group.setdefault(a.group, []).append(a)
    picked = []
    for g in reversed(list(accuracy_by_group(attempts))):
        if len(picked) >= k:
            break
        picked.append(by_group[g][0])
    return picked


def _read_model(path: Path, model: type[M]) -> M | None:
    """Stats a trained checkpoint carries; the base model (iteration 0) has none."""
    return model.model_validate_json(path.read_text()) if path.exists() else None


def evaluate(
    config_json: str, iteration: int, eval_dir: str, base_dir: str, policy_dir: str, history_dir: str,
    out_dir: str,
) -> IterationRecord:
    from components.backends.hf import HFGenerator, SamplingConfig
    from components.generate import score, uses_few_shot
    from components.policy import load_policy
    from components.tasks import make_task
    from pipelines.config import RunConfig

    config = RunConfig.from_json(config_json)
    task = make_task(config.task)
    gen = config.generation
    examples = read_rows(Path(eval_dir) / EXAMPLES, Example)
    model, tok = load_policy(base_dir, policy_dir)
    generator = HFGenerator(model, tok, batch_size=gen.batch_size)
    prefix = task.prefix(hint=False, direct=gen.direct, use_few_shot=uses_few_shot(gen.no_prompt, iteration))
    questions = [task.question(e, hint=False, direct=gen.direct) for e in examples]
    greedy = SamplingConfig(num_samples=1, temperature=0.0, max_new_tokens=gen.max_new_tokens)
    outputs = generator.generate(prefix, questions, greedy, task.stop, label=f"iteration {iteration} · evaluate")
    attempts = score(task, examples, outputs, source="generation", saved_prompts=questions, direct=gen.direct)

    policy = Path(policy_dir)
    set_stats = _read_model(policy / SET_STATS, SetStats)
    train_stats = _read_model(policy / TRAIN_STATS, TrainStats)
    record = IterationRecord(
        iteration=iteration,
        eval_accuracy=sum(a.correct for a in attempts) / len(attempts),
        eval_accuracy_by_group=accuracy_by_group(attempts),
        eval_questions=len(attempts),
        samples=pick_samples(attempts, config.evaluation.report_samples),
        **(set_stats.model_dump(include={"train_questions", "solved_by_generation", "solved_by_rationalization",
                                         "train_examples"}) if set_stats else {}),
        **({"train_steps": train_stats.train_steps, "train_loss": train_stats.train_loss} if train_stats else {}),
    )
    history = read_rows(Path(history_dir) / HISTORY, IterationRecord)
    history = [r for r in history if r.iteration < iteration] + [record]
    out = Path(out_dir)
    write_rows(out / HISTORY, history)
    write_rows(out / EVAL_ATTEMPTS, attempts)
    by_group = ", ".join(f"{g}: {v:.0%}" for g, v in record.eval_accuracy_by_group.items())
    print(f"iteration {iteration}: held-out accuracy {record.eval_accuracy:.1%} ({by_group})")
    return record


def evaluate_op(
    config_json: str,
    iteration: int,
    eval_set: Input[Dataset],
    base_model: Input[Model],
    policy: Input[Model],
    history_in: Input[Dataset],
    history: Output[Dataset],
    metrics: Output[Metrics],
):
    from components.evaluate import evaluate

    record = evaluate(
        config_json, iteration, eval_set.path, base_model.path, policy.path, history_in.path, history.path
    )
    metrics.log_metric("eval_accuracy", record.eval_accuracy)
    for group, value in record.eval_accuracy_by_group.items():
        metrics.log_metric(f"eval_accuracy_{group}", value)
    for key in ("solved_by_generation", "solved_by_rationalization", "train_examples", "train_steps"):
        metrics.log_metric(key, getattr(record, key))
