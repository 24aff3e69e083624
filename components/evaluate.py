"""Step: evaluate an iteration's model greedily on the held-out split and add the iteration's line to the
run history (accuracy overall and per class, and what the model was trained on)."""

import shutil
from pathlib import Path
from typing import TypeVar

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.core import metrics
from components.core.artifact_files import EVAL_ATTEMPTS, EXAMPLES, HISTORY, SET_STATS, TRAIN_STATS
from components.core.rows import Attempt, Example, IterationRecord, SetStats, TrainStats, read_rows, write_rows
from components.core.seeds import evaluation_seed
from components.settings.steps import EvaluateSettings

M = TypeVar("M", SetStats, TrainStats)


def accuracy_by_group(attempts: list[Attempt]) -> dict[str, float]:
    return metrics.accuracy_by_group([a.group for a in attempts], [a.correct for a in attempts])


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


def _read_stats(path: Path, model: type[M]) -> M | None:
    """Stats a trained model carries; the base model (iteration 0) has none."""
    return model.model_validate_json(path.read_text()) if path.exists() else None


def extra_metrics(
    settings: EvaluateSettings, task, generator, examples: list[Example], prefix: str, questions: list[str],
    greedy_outputs: list[list[str]], iteration: int,
) -> dict[str, float]:
    """maj@k and pass@k over `num_samples` samples; MAP@3 where the task ranks options (multiple choice) and
    the backend gives scores (hf)."""
    from components.generation.hf import HFGenerator
    from components.generation.sampling import SamplingConfig

    out: dict[str, float] = {}
    gen = settings.generation
    if settings.num_samples > 1:
        sampling = SamplingConfig(num_samples=settings.num_samples, temperature=settings.temperature,
                                  max_new_tokens=gen.max_new_tokens, seed=evaluation_seed(settings.seed, iteration))
        samples = generator.generate(prefix, questions, sampling, task.stop, label=f"iteration {iteration} · maj@k")
        predictions = [[task.extract_answer(c, direct=gen.direct) for c in outs] for outs in samples]
        golds = [e.answer for e in examples]
        k = settings.num_samples
        out[f"maj@{k}"] = metrics.maj_at_k(predictions, golds, lambda p, g: task.is_correct(p, g))
        counts = [(len(p), sum(task.is_correct(x, g) for x in p)) for p, g in zip(predictions, golds, strict=True)]
        out[f"pass@{k}"] = metrics.mean_pass_at_k(counts, k)
    if task.ranks_options and isinstance(generator, HFGenerator):
        from components.generation.ranking import rank_options
        from components.tasks.multiple_choice import ranking_from_scores

        reqs = [task.ranking_request(e, outs[0], direct=gen.direct)
                for e, outs in zip(examples, greedy_outputs, strict=True)]
        scores = rank_options(generator.model, generator.tok, [prefix + r[0] for r in reqs], [r[1] for r in reqs],
                              gen.batch_size)
        rankings = [ranking_from_scores(r[2], sc) for r, sc in zip(reqs, scores, strict=True)]
        out["map@3"] = metrics.map_at_3(rankings, [e.answer for e in examples])
    return out


def evaluate(
    settings: EvaluateSettings, iteration: int, eval_dir: str, base_dir: str, model_dir: str, history_dir: str,
    out_dir: str, active: bool = True,
) -> IterationRecord | None:
    """Evaluate `model_dir` and write the history with this iteration's record added. `active=False` (an early
    stop before this iteration): the history goes on unchanged, no model is loaded."""
    from components.generate import score
    from components.generation import load_generator
    from components.generation.sampling import SamplingConfig
    from components.tasks import make_task

    out = Path(out_dir)
    if not active:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(history_dir) / HISTORY, out / HISTORY)
        write_rows(out / EVAL_ATTEMPTS, [])
        return None
    task = make_task(settings.task)
    gen = settings.generation
    examples = read_rows(Path(eval_dir) / EXAMPLES, Example)
    generator = load_generator(gen.backend, base_dir, model_dir, batch_size=gen.batch_size, vllm=gen.vllm)
    prefix = task.prefix(hint=False, direct=gen.direct, use_few_shot=gen.uses_few_shot(iteration))
    questions = [task.question(e, hint=False, direct=gen.direct) for e in examples]
    greedy = SamplingConfig(num_samples=1, temperature=0.0, max_new_tokens=gen.max_new_tokens)
    outputs = generator.generate(prefix, questions, greedy, task.stop, label=f"iteration {iteration} · evaluate")
    attempts = score(task, examples, outputs, source="generation", saved_prompts=questions, direct=gen.direct)
    extra = extra_metrics(settings, task, generator, examples, prefix, questions, outputs, iteration)

    model = Path(model_dir)
    set_stats = _read_stats(model / SET_STATS, SetStats)
    train_stats = _read_stats(model / TRAIN_STATS, TrainStats)
    record = IterationRecord(
        iteration=iteration,
        eval_accuracy=sum(a.correct for a in attempts) / len(attempts),
        eval_accuracy_by_group=accuracy_by_group(attempts),
        eval_questions=len(attempts),
        eval_metrics=extra,
        samples=pick_samples(attempts, settings.report_samples),
        **(set_stats.model_dump(include={"train_questions", "solved_by_generation", "solved_by_rationalization",
                                         "train_examples"}) if set_stats else {}),
        **({"train_steps": train_stats.train_steps, "train_loss": train_stats.train_loss} if train_stats else {}),
    )
    history = read_rows(Path(history_dir) / HISTORY, IterationRecord)
    history = [r for r in history if r.iteration < iteration] + [record]
    write_rows(out / HISTORY, history)
    write_rows(out / EVAL_ATTEMPTS, attempts)
    by_group = ", ".join(f"{g}: {v:.0%}" for g, v in record.eval_accuracy_by_group.items())
    more = "".join(f", {k} {v:.1%}" for k, v in extra.items())
    print(f"iteration {iteration}: held-out accuracy {record.eval_accuracy:.1%} ({by_group}){more}")
    return record


def evaluate_op(
    settings: str,
    iteration: int,
    active: bool,
    eval_set: Input[Dataset],
    base_model: Input[Model],
    model: Input[Model],
    history_in: Input[Dataset],
    history: Output[Dataset],
    metrics: Output[Metrics],
):
    from components.evaluate import evaluate
    from components.settings.steps import EvaluateSettings
    from components.step_io import log_metrics

    record = evaluate(EvaluateSettings.load(settings), iteration, eval_set.path, base_model.path, model.path,
                      history_in.path, history.path, active)
    values: dict[str, float] = {}
    if record is not None:  # what a user compares across iterations, on the step the UI lists per iteration
        values["iteration"] = record.iteration
        values["eval_accuracy"] = record.eval_accuracy
        values.update({f"eval_accuracy_{group}": v for group, v in record.eval_accuracy_by_group.items()})
        values.update({key.replace("@", "_at_"): v for key, v in record.eval_metrics.items()})
        for key in ("solved_by_generation", "solved_by_rationalization", "train_examples", "train_steps"):
            values[key] = getattr(record, key)
        if record.train_loss is not None:
            values["train_loss"] = record.train_loss
    log_metrics(metrics, values)
