"""Step: the early-stop gate at the start of every iteration. Held-out accuracy that has not improved for
`patience` iterations stops the run: the gate answers False, and the iteration's steps (and every later
iteration's) then do nothing, loading no model, so a stopped run's remaining steps cost seconds."""

from pathlib import Path

from kfp.dsl import Dataset, Input

from components.core.artifact_files import HISTORY
from components.core.rows import IterationRecord, read_rows
from components.settings.steps import GateSettings


def should_continue(history: list[IterationRecord], patience: int | None) -> bool:
    """False once the best accuracy is `patience` or more iterations old."""
    if patience is None or not history:
        return True
    best = max(range(len(history)), key=lambda i: (history[i].eval_accuracy, -i))
    return len(history) - 1 - best < patience


def stopped_after(history: list[IterationRecord], patience: int | None) -> int | None:
    """The iteration after which the run stopped early (None: it did not stop)."""
    for k in range(1, len(history) + 1):
        if not should_continue(history[:k], patience):
            return history[k - 1].iteration
    return None


def gate(settings: GateSettings, iteration: int, history_dir: str) -> bool:
    history = read_rows(Path(history_dir) / HISTORY, IterationRecord)
    go = should_continue(history, settings.patience)
    if not go:
        print(f"iteration {iteration} skipped: held-out accuracy has not improved for {settings.patience} "
              f"iterations (stopped after iteration {history[-1].iteration})")
    return go


def gate_op(settings: str, iteration: int, history: Input[Dataset]) -> bool:
    from components.gate import gate
    from components.settings.steps import GateSettings

    return gate(GateSettings.load(settings), iteration, history.path)
