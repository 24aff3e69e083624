"""Commands to run before spending GPU hours: check a data file, see the exact prompt, score predictions.

    star data check --task gsm8k ../shared/data/gsm8k/train_rand_split.jsonl
    star prompt --task commonsenseqa ../shared/data/commonsenseqa/train_rand_split.jsonl --row 3 --hint
    star score --task gsm8k ../shared/data/gsm8k/train_rand_split.jsonl predictions.jsonl --json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from components.core import metrics
from components.core.errors import StarError
from components.core.rows import Example
from components.core.validation import describe_problems, first_problem
from components.tasks import DATA_TASKS, TaskConfig, make_task
from components.tasks.data_task import DataTask, split_indices

data_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Check task data files.")

TaskOpt = Annotated[str, typer.Option("--task", "-t", help=f"The task: {', '.join(DATA_TASKS)}.")]
PathArg = Annotated[
    str, typer.Argument(help="Data file (JSONL or CSV; local, s3:// or gs://) or Hugging Face dataset ID.")
]
PromptsDirOpt = Annotated[
    str | None, typer.Option("--prompts-dir", help="Folder of the few-shot files (default: the data's folder).")
]
TaskSetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="A task setting, e.g. --set eval_size=100 (repeatable).")
]
SplitOpt = Annotated[
    str, typer.Option("--split", help="Questions to use: all, train or eval (the run's split of the file).")
]


def build_task(task: str, path: str, prompts_dir: str | None = None, settings: list[str] | None = None) -> DataTask:
    """The task a run with `task: {name: TASK, path: PATH, ...settings}` would use."""
    if task not in DATA_TASKS:
        raise StarError(f"--task {task!r} is not a task that reads a data file; use one of {', '.join(DATA_TASKS)}.")
    data: dict[str, Any] = {"name": task, "path": path}
    if prompts_dir is not None:
        data["prompts_dir"] = prompts_dir
    for item in settings or []:
        if "=" not in item:
            raise StarError(f"--set {item!r} must look like key=value.")
        key, raw = item.split("=", 1)
        data[key.strip().removeprefix("task.")] = yaml.safe_load(raw)
    try:
        config = TypeAdapter(TaskConfig).validate_python(data)
    except ValidationError as e:
        problems = describe_problems(e, default="task", skip=1, unknown="is not a setting of this task")
        raise StarError(f"The {task} task settings are not valid: {problems}.") from e
    built = make_task(config)
    assert isinstance(built, DataTask)
    return built


def _split_examples(task: DataTask, split: str) -> list[Example]:
    if split not in ("all", "train", "eval"):
        raise StarError(f"--split {split!r} must be all, train or eval.")
    return task.all_examples() if split == "all" else task.load(split)


# ------------------------------------------------------------------------------------------- data check


@data_app.command("check")
def check(
    path: PathArg,
    task: TaskOpt,
    prompts_dir: PromptsDirOpt = None,
    set_: TaskSetOpt = None,
    max_errors: Annotated[int, typer.Option("--max-errors", help="Rejected rows to list.")] = 10,
) -> None:
    """Validate every row of a data file and the few-shot files: counts, splits and the first errors with line
    and field. Exits with 1 when a row or a few-shot example is rejected."""
    t = build_task(task, path, prompts_dir, set_)
    report = t.read()
    c = t.config
    print(f"{t.name} · {report.source}")
    print(f"  rows: {report.summary()}")
    examples = sum(len(t.examples_of(line, row)) for line, row in report.rows)
    if t.name == "logic":
        print(f"  examples: {examples} sub-questions of {len(report.rows)} problems")
    else:
        print(f"  examples: {examples}")
    problems = report.rejected
    if len(report.rows) > c.eval_size:
        train = split_indices(len(report.rows), "train", eval_size=c.eval_size, train_size=c.train_size, seed=c.seed)
        print(f"  splits: {len(train)} train rows, {c.eval_size} eval rows (seed {c.seed})")
    elif report.rows:
        print(f"  splits: eval_size {c.eval_size} leaves no training rows of the {len(report.rows)} valid ones")
        problems += 1
    for direct in (False, True):
        mode = "direct" if direct else "rationale"
        try:
            shots = t.shots(direct=direct)
        except StarError as e:
            print(f"  few-shot ({mode}): {e}")
            problems += 1
            continue
        print(f"  few-shot ({mode}): {len(shots.plain)} worked examples from {shots.origin}; each reads out to "
              f"its own answer ({', '.join(shots.answers)})")
    if report.errors:
        print(f"  rejected rows (first {min(max_errors, report.rejected)} of {report.rejected}):")
        for err in report.errors[:max_errors]:
            print(f"    {err}")
    if problems:
        raise typer.Exit(1)


# ------------------------------------------------------------------------------------------------ prompt


def prompt_command(
    path: PathArg,
    task: TaskOpt,
    row: Annotated[int, typer.Option("--row", help="The example, counted from 0 in file order "
                                                   "(logic: one example per sub-question).")] = 0,
    id_: Annotated[str | None, typer.Option("--id", help="The example with this id (instead of --row).")] = None,
    hint: Annotated[bool, typer.Option("--hint", help="The rationalization prompt (the answer as a hint).")] = False,
    direct: Annotated[bool, typer.Option("--direct", help="Direct mode: answer without a rationale.")] = False,
    no_few_shot: Annotated[bool, typer.Option("--no-few-shot", help="Without the few-shot prefix "
                                                                    "(no_prompt after iteration 1).")] = False,
    prompts_dir: PromptsDirOpt = None,
    set_: TaskSetOpt = None,
) -> None:
    """Print exactly what the model will see for one example, the few-shot prefix included."""
    t = build_task(task, path, prompts_dir, set_)
    examples = t.all_examples()
    if id_ is not None:
        found = [e for e in examples if e.id == id_]
        if not found:
            raise StarError(f"No example of {path} has the id {id_!r}.")
        ex = found[0]
        row = examples.index(ex)
    else:
        if not 0 <= row < len(examples):
            raise StarError(
                f"--row {row} is out of range: {path} has {len(examples)} examples (0..{len(examples) - 1})."
            )
        ex = examples[row]
    text = t.prompt(ex, hint=hint, direct=direct, use_few_shot=not no_few_shot)
    print(f"example {row} of {len(examples)} · id {ex.id} · gold answer {ex.answer} · group {ex.group}",
          file=sys.stderr)
    sys.stdout.write(text)
    if sys.stdout.isatty():
        sys.stdout.write("\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------------------------- score


class PredictionRow(BaseModel):
    """One line of a predictions file: a completion for a question, optionally a ranking of letters."""

    model_config = ConfigDict(extra="ignore")

    id: str
    output: str
    ranking: list[str] | None = Field(None, max_length=26)

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, v: object) -> object:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("ranking")
    @classmethod
    def _letters(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        bad = [x for x in v if len(x.strip()) != 1 or not x.strip().isalpha()]
        if bad:
            raise ValueError(f"must be a list of option letters (got {bad[0]!r})")
        return [x.strip().upper() for x in v]


def read_predictions(path: Path) -> list[tuple[int, PredictionRow]]:
    if not path.is_file():
        raise StarError(f"{path} does not exist; pass a JSONL file of {{\"id\": ..., \"output\": ...}} lines.")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append((lineno, PredictionRow.model_validate(json.loads(line.rstrip("\r\n")))))
            except json.JSONDecodeError as e:
                reason = e.msg.removesuffix(" at")
                raise StarError(f"{path}, line {lineno}: not valid JSON ({reason} at column {e.colno}).") from e
            except ValidationError as e:
                loc, msg = first_problem(e)
                raise StarError(f"{path}, line {lineno}, field '{loc or 'row'}': {msg}.") from e
    if not rows:
        raise StarError(f"{path} holds no predictions.")
    return rows


def score_predictions(task: DataTask, examples: list[Example], predictions: list[tuple[int, PredictionRow]],
                      source: str, *, direct: bool = False) -> dict[str, Any]:
    """Accuracy (first prediction of each id), maj@k and pass@k over the predictions of each id, MAP@3 for
    multiple choice, and accuracy by group."""
    by_id = {e.id: e for e in examples}
    outputs: dict[str, list[PredictionRow]] = {}
    for lineno, p in predictions:
        if p.id not in by_id:
            raise StarError(f"{source}, line {lineno}, field 'id': {p.id!r} is not a question of the data.")
        outputs.setdefault(p.id, []).append(p)
    scored = [by_id[i] for i in outputs]
    answers = [[task.extract_answer(p.output, direct=direct) for p in outputs[e.id]] for e in scored]
    right = [[task.is_correct(a, e.answer) for a in ans] for e, ans in zip(scored, answers, strict=True)]
    counts = [len(a) for a in answers]
    result: dict[str, Any] = {
        "task": task.name,
        "questions": len(examples),
        "questions_scored": len(scored),
        "questions_missing": len(examples) - len(scored),
        "predictions": len(predictions),
        "samples_per_question": {"min": min(counts), "max": max(counts)},
        "unreadable": sum(a is None for ans in answers for a in ans),
        "accuracy": metrics.accuracy([r[0] for r in right]),
    }
    if max(counts) > 1:
        key = f"maj@{max(counts)}" if min(counts) == max(counts) else "maj@all"
        result[key] = metrics.maj_at_k(answers, [e.answer for e in scored], task.is_correct)
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= min(counts)]
    if min(counts) not in ks:
        ks.append(min(counts))
    result["pass@k"] = {str(k): metrics.mean_pass_at_k([(len(r), sum(r)) for r in right], k) for k in ks}
    if task.ranks_options:
        rankings = []
        for e, ans in zip(scored, answers, strict=True):
            given = outputs[e.id][0].ranking
            rankings.append(given if given is not None else metrics.vote_ranking(ans))
        result["map@3"] = metrics.map_at_3(rankings, [e.answer for e in scored])
        result["rankings_given"] = sum(outputs[e.id][0].ranking is not None for e in scored)
    result["accuracy_by_group"] = metrics.accuracy_by_group([e.group for e in scored], [r[0] for r in right])
    return result


def format_scores(result: dict[str, Any], path: str) -> str:
    s = result["samples_per_question"]
    per = f"{s['min']}" if s["min"] == s["max"] else f"{s['min']}-{s['max']}"
    lines = [
        f"{result['task']} · {path}",
        f"  questions scored: {result['questions_scored']} of {result['questions']}"
        + (f" ({result['questions_missing']} without predictions)" if result["questions_missing"] else ""),
        f"  predictions: {result['predictions']} ({per} per question, "
        f"{result['unreadable']} without a readable answer)",
        f"  accuracy: {result['accuracy']:.2%}",
    ]
    for key, value in result.items():
        if key.startswith("maj@"):
            lines.append(f"  {key}: {value:.2%}")
    for k, value in result["pass@k"].items():
        lines.append(f"  pass@{k}: {value:.2%}")
    if "map@3" in result:
        lines.append(f"  MAP@3: {result['map@3']:.4f} ({result['rankings_given']} rankings given, the others "
                     "ranked by votes)")
    groups = result["accuracy_by_group"]
    if len(groups) > 1:
        lines.append("  by group: " + ", ".join(f"{g} {v:.1%}" for g, v in groups.items()))
    return "\n".join(lines)


def score_command(
    path: PathArg,
    predictions: Annotated[Path, typer.Argument(help='JSONL lines {"id": ..., "output": ...}, one or more per id; '
                                                     'multiple choice may add "ranking": ["B", "A", "C"].')],
    task: TaskOpt,
    json_: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    direct: Annotated[bool, typer.Option("--direct", help="The outputs answer directly (no rationale).")] = False,
    split: SplitOpt = "all",
    prompts_dir: PromptsDirOpt = None,
    set_: TaskSetOpt = None,
) -> None:
    """Score generations: accuracy, maj@k where there are several per id, pass@k, and MAP@3 for multiple
    choice."""
    t = build_task(task, path, prompts_dir, set_)
    examples = _split_examples(t, split)
    result = score_predictions(t, examples, read_predictions(predictions), str(predictions), direct=direct)
    result["split"] = split
    if json_:
        print(json.dumps(result, indent=2))
    else:
        print(format_scores(result, path))
