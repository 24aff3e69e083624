"""The learning-rate schedules a training run can follow after warm-up, shared by STaR's train step and the base
model's pre-training stages (free of torch: the run configuration imports it)."""

from typing import Literal

#: constant, or decayed to zero by the last step (cosine, linear)
LrSchedule = Literal["constant", "cosine", "linear"]


def trainer_scheduler(schedule: LrSchedule) -> str:
    """transformers' `lr_scheduler_type` for a schedule (each starts with the warm-up steps)."""
    return "constant_with_warmup" if schedule == "constant" else schedule
