"""Task plug-ins, looked up by name from the run configuration."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.tasks.arithmetic import ArithmeticConfig, ArithmeticTask
from components.tasks.base import Task
from components.tasks.commonsenseqa import CommonsenseQAConfig, CommonsenseQATask
from components.tasks.gsm8k import GSM8KConfig, GSM8KTask
from components.tasks.logic import LogicConfig, LogicTask
from components.tasks.multiple_choice import MultipleChoiceConfig, MultipleChoiceTask

TaskConfig = Annotated[
    ArithmeticConfig | GSM8KConfig | CommonsenseQAConfig | MultipleChoiceConfig | LogicConfig,
    Field(discriminator="name"),
]
#: The tasks that read a data file (the others generate their questions).
DATA_TASKS = ("gsm8k", "commonsenseqa", "multiple_choice", "logic")


def make_task(
    config: ArithmeticConfig | GSM8KConfig | CommonsenseQAConfig | MultipleChoiceConfig | LogicConfig,
) -> Task:
    if isinstance(config, ArithmeticConfig):
        return ArithmeticTask(config)
    if isinstance(config, GSM8KConfig):
        return GSM8KTask(config)
    if isinstance(config, CommonsenseQAConfig):
        return CommonsenseQATask(config)
    if isinstance(config, MultipleChoiceConfig):
        return MultipleChoiceTask(config)
    if isinstance(config, LogicConfig):
        return LogicTask(config)
    raise ValueError(f"unknown task {config!r}")


__all__ = [
    "DATA_TASKS",
    "ArithmeticConfig",
    "ArithmeticTask",
    "CommonsenseQAConfig",
    "CommonsenseQATask",
    "GSM8KConfig",
    "GSM8KTask",
    "LogicConfig",
    "LogicTask",
    "MultipleChoiceConfig",
    "MultipleChoiceTask",
    "Task",
    "TaskConfig",
    "make_task",
]
