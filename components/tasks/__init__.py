"""Task plug-ins, looked up by name from the run configuration."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.tasks.arithmetic import ArithmeticConfig, ArithmeticTask
from components.tasks.base import Task

TaskConfig = Annotated[ArithmeticConfig, Field(discriminator="name")]


def make_task(config: ArithmeticConfig) -> Task:
    if isinstance(config, ArithmeticConfig):
        return ArithmeticTask(config)
    raise ValueError(f"unknown task {config!r}")


__all__ = ["ArithmeticConfig", "ArithmeticTask", "Task", "TaskConfig", "make_task"]
