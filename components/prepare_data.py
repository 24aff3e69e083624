"""Step: prepare data. Reads and validates the task's splits and starts an empty history."""

from pathlib import Path

from kfp.dsl import Dataset, Output

from components.core.artifact_files import EXAMPLES, HISTORY
from components.core.errors import StarError
from components.core.rows import write_rows
from components.settings.steps import PrepareDataSettings
from components.tasks import make_task


def prepare_data(settings: PrepareDataSettings, train_dir: str, eval_dir: str, history_dir: str) -> dict[str, int]:
    task = make_task(settings.task)
    train, held_out = task.load("train"), task.load("eval")
    if not train:
        raise StarError("The training split is empty; check the task's data settings.")
    if not held_out:
        raise StarError("The evaluation split is empty; check the task's data settings.")
    write_rows(Path(train_dir) / EXAMPLES, train)
    write_rows(Path(eval_dir) / EXAMPLES, held_out)
    write_rows(Path(history_dir) / HISTORY, [])
    print(f"prepared {len(train)} training and {len(held_out)} evaluation questions of task {task.name}")
    return {"train_questions": len(train), "eval_questions": len(held_out)}


def prepare_data_op(settings: str, train: Output[Dataset], eval_set: Output[Dataset], history: Output[Dataset]):
    from components.prepare_data import prepare_data
    from components.settings.steps import PrepareDataSettings

    counts = prepare_data(PrepareDataSettings.load(settings), train.path, eval_set.path, history.path)
    train.metadata.update({"questions": counts["train_questions"]})
    eval_set.metadata.update({"questions": counts["eval_questions"]})
