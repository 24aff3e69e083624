"""Step: decide whether the next iteration runs (early stop when held-out accuracy has not improved for
`evaluation.patience` iterations). The DAG nests each next iteration in `dsl.If` on this step's answer."""

from pathlib import Path

from kfp.dsl import Dataset, Input

from components.artifacts import HISTORY
from components.rows import IterationRecord, read_rows


def should_continue(history: list[IterationRecord], patience: int | None) -> bool:
    """False once the best accuracy is `patience` or more iterations old."""
    if patience is None or not history:
        return True
    best = max(range(len(history)), key=lambda i: (history[i].eval_accuracy, -i))
    return len(history) - 1 - best < patience


def continue_check(config_json: str, history_dir: str) -> bool:
    from pipelines.config import RunConfig

    config = RunConfig.from_json(config_json)
    history = read_rows(Path(history_dir) / HISTORY, IterationRecord)
    go = should_continue(history, config.evaluation.patience)
    if not go:
        print(f"stopping early: held-out accuracy has not improved for {config.evaluation.patience} iterations")
    return go


def continue_op(config_json: str, history: Input[Dataset]) -> bool:
    from components.early_stop import continue_check

    return continue_check(config_json, history.path)
