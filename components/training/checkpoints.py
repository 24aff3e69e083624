"""Where a training run's resumable checkpoints go (`CheckpointPlan`): one folder per run name, iteration and
inputs, so a retried or resumed train step finds its own and never another run's. Plain data, no torch: the
train step hands a plan to the processes of a distributed run inside their `WorkerSpec`."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict

from components.storage import StorageConfig


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
