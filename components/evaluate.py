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


def extra_metrics(
    config, task, generator, examples: list[Example], prefix: str, questions: list[str],
    greedy_outputs: list[list[str]], iteration: int,
) -> dict[str, float]:
    """maj@k and pass@k over `evaluation.num_samples` samples; MAP@3 where the task ranks options (multiple
    choice) and the backend gives scores (hf)."""
    from components import metrics
    from components.backends.hf import HFGenerator
    from components.backends.sampling import SamplingConfig

    out: dict[str, float] = {}
    ev, gen = config.evaluation, config.generation
    if ev.num_samples > 1:
        sampling = SamplingConfig(num_samples=ev.num_samples, temperature=ev.temperature,
                                  max_new_tokens=gen.max_new_tokens, seed=config.seed * 7 + iteration)
        samples = generator.generate(prefix, questions, sampling, task.stop, label=f"iteration {iteration} · maj@k")
        predictions = [[task.extract_answer(c, direct=gen.direct) for c in outs] for outs in samples]
        golds = [e.answer for e in examples]
        k = ev.num_samples
        out[f"maj@{k}"] = metrics.maj_at_k(predictions, golds, lambda p, g: task.is_correct(p, g))
        counts = [(len(p), sum(task.is_correct(x, g) for x in p)) for p, g in zip(predictions, golds, strict=True)]
        out[f"pass@{k}"] = metrics.mean_pass_at_k(counts, k)
    if hasattr(task, "ranking_request") and isinstance(generator, HFGenerator):
        from components.backends.ranking import rank_options
        from components.tasks.multiple_choice import ranking_from_scores

        reqs = [task.ranking_request(e, outs[0], direct=gen.direct)
                for e, outs in zip(examples, greedy_outputs, strict=True)]
        scores = rank_options(generator.model, generator.tok, [prefix + r[0] for r in reqs], [r[1] for r in reqs],
                              gen.batch_size)
        rankings = [ranking_from_scores(r[2], sc) for r, sc in zip(reqs, scores, strict=True)]
        out["map@3"] = metrics.map_at_3(rankings, [e.answer for e in examples])
    return out


def evaluate(
    config_json: str, iteration: int, eval_dir: str, base_dir: str, policy_dir: str, history_dir: str,
    out_dir: str,
) -> IterationRecord:
    from components.backends import load_generator
    from components.backends.sampling import SamplingConfig
    from components.generate import score, uses_few_shot
    from components.tasks import make_task
    from pipelines.config import RunConfig

    config = RunConfig.from_json(config_json)
    task = make_task(config.task)
    gen = config.generation
    examples = read_rows(Path(eval_dir) / EXAMPLES, Example)
    generator = load_generator(gen, base_dir, policy_dir)
    prefix = task.prefix(hint=False, direct=gen.direct, use_few_shot=uses_few_shot(gen.no_prompt, iteration))
    questions = [task.question(e, hint=False, direct=gen.direct) for e in examples]
    greedy = SamplingConfig(num_samples=1, temperature=0.0, max_new_tokens=gen.max_new_tokens)
    outputs = generator.generate(prefix, questions, greedy, task.stop, label=f"iteration {iteration} · evaluate")
    attempts = score(task, examples, outputs, source="generation", saved_prompts=questions, direct=gen.direct)
    extra = extra_metrics(config, task, generator, examples, prefix, questions, outputs, iteration)

    policy = Path(policy_dir)
    set_stats = _read_model(policy / SET_STATS, SetStats)
    train_stats = _read_model(policy / TRAIN_STATS, TrainStats)
    record = IterationRecord(
        iteration=iteration,
        eval_accuracy=sum(a.correct for a in attempts) / len(attempts),
        eval_accuracy_by_group=accuracy_by_group(attempts),
        eval_questions=len(attempts),
        eval_metrics=extra,
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
    more = "".join(f", {k} {v:.1%}" for k, v in extra.items())
    print(f"iteration {iteration}: held-out accuracy {record.eval_accuracy:.1%} ({by_group}){more}")
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
    from components.step_metrics import log_metrics

    record = evaluate(
        config_json, iteration, eval_set.path, base_model.path, policy.path, history_in.path, history.path
    )
    values: dict[str, float] = {"eval_accuracy": record.eval_accuracy}
    values.update({f"eval_accuracy_{group}": v for group, v in record.eval_accuracy_by_group.items()})
    values.update({key.replace("@", "_at_"): v for key, v in record.eval_metrics.items()})
    for key in ("solved_by_generation", "solved_by_rationalization", "train_examples", "train_steps"):
        values[key] = getattr(record, key)
    log_metrics(metrics, values)
