"""Resumable training: the Trainer's checkpoints, published to storage, and the signal that asks for one.

A checkpoint (`checkpoint-STEP/`: weights or adapter, optimizer, scheduler, RNG states, trainer state) is saved
every `every` steps and when the process gets SIGTERM (a preempted pod, a stopped run), uploaded to `url` with
a manifest written last, and older ones are removed after the new one is complete. A train step that starts
again with the same inputs finds the last complete checkpoint and continues from it.
"""

from __future__ import annotations

import hashlib
import re
import signal
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from transformers import TrainerCallback

from components.storage import (
    MANIFEST,
    StorageConfig,
    delete_dir,
    download_dir,
    join_location,
    list_objects,
    upload_dir,
)

_STEP = re.compile(r"^checkpoint-(\d+)/" + re.escape(MANIFEST) + "$")


class CheckpointPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: The folder of this training run's checkpoints (one per train step and inputs).
    url: str
    every: int
    storage: StorageConfig = StorageConfig()


def run_key(*parts: str) -> str:
    """A short stable name for one training run: the same inputs always give the same folder."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def complete_steps(plan: CheckpointPlan) -> list[int]:
    """Steps of the complete checkpoints under `plan.url` (a folder counts once its manifest is there)."""
    return sorted(int(m.group(1)) for k in list_objects(plan.url, plan.storage) if (m := _STEP.match(k)))


def fetch_latest(plan: CheckpointPlan, local_root: Path) -> Path | None:
    """The last complete checkpoint, downloaded (verified) under `local_root`; None when there is none."""
    steps = complete_steps(plan)
    if not steps:
        return None
    name = f"checkpoint-{steps[-1]}"
    local = local_root / name
    download_dir(join_location(plan.url, name), local, plan.storage)
    return local


def publish(plan: CheckpointPlan, local: Path) -> None:
    """Upload a saved checkpoint, then remove the older ones (manifest first, so none is ever half-visible
    as complete)."""
    upload_dir(local, join_location(plan.url, local.name), plan.storage)
    step = int(local.name.split("-")[1])
    for old in complete_steps(plan):
        if old < step:
            delete_dir(join_location(plan.url, f"checkpoint-{old}"), plan.storage)


class StopRequest:
    """SIGTERM (Kubernetes' notice before it kills a pod) turned into a flag the training loop checks between
    steps. Installed only in the main thread; the previous handler comes back on exit."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class CheckpointCallback(TrainerCallback):
    """Save every `plan.every` steps (through the Trainer's own `save_steps`) and at a stop request; publish
    every saved checkpoint to storage from the main process."""

    def __init__(self, plan: CheckpointPlan, stop: StopRequest) -> None:
        self.plan, self.stop = plan, stop
        self.stopped_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.stop.requested and state.global_step < state.max_steps:
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.is_world_process_zero:
            publish(self.plan, Path(args.output_dir) / f"checkpoint-{state.global_step}")
