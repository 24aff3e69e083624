"""Resumable training: the Trainer's checkpoints, published to storage, and the signal that asks for one.

A checkpoint (`checkpoint-STEP/`: weights or adapter, optimizer, scheduler, RNG states, trainer state) is saved
every `every` steps and when a process gets SIGTERM (a preempted pod, a stopped run), uploaded to `url` with
a manifest written last, and older ones are removed after the new one is complete. A train step that starts
again with the same inputs finds the last complete checkpoint and continues from it.

Distributed (DeepSpeed over ranks on one pod or on the nodes of a TrainJob): every rank saves its own part of a
checkpoint (its ZeRO optimizer shard, its RNG state) into a folder of its own, so every rank publishes: the
ranks share their file lists, each uploads the files no lower rank has, and rank 0 writes the manifest of them
all once every rank is done. A SIGTERM that reaches one node only is shared with all ranks at the next step, so
they all save the same step and stop. On resume every rank downloads the whole checkpoint and DeepSpeed loads
its own shard from it.
"""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from components.storage import (
    MANIFEST,
    Manifest,
    build_manifest,
    clear_manifest,
    delete_dir,
    download_dir,
    join_location,
    list_objects,
    upload_dir,
    upload_files,
    write_manifest,
)
from components.training.checkpoints import CheckpointPlan

_STEP = re.compile(r"^checkpoint-(\d+)/" + re.escape(MANIFEST) + "$")


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


def _world() -> tuple[int, int]:
    """(rank, world size) of torch.distributed, (0, 1) without it."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def publish(plan: CheckpointPlan, local: Path) -> None:
    """Upload a saved checkpoint (called on every rank), then remove the older ones (manifest first, so none is
    ever half-visible as complete)."""
    rank, world = _world()
    url = join_location(plan.url, local.name)
    if world == 1:
        upload_dir(local, url, plan.storage)
    else:
        import torch.distributed as dist

        mine = build_manifest(local)
        everyone: list[Any] = [None] * world
        dist.all_gather_object(everyone, mine.model_dump())
        manifests = [Manifest.model_validate(m) for m in everyone]
        owner: dict[str, int] = {}
        for r, m in enumerate(manifests):
            for rel in m.files:
                owner.setdefault(rel, r)  # a file several ranks wrote (trainer_state.json) goes up once
        if rank == 0:
            clear_manifest(url, plan.storage)
        dist.barrier()
        upload_files(local, url, [rel for rel, r in owner.items() if r == rank], plan.storage)
        dist.barrier()
        if rank != 0:
            return
        write_manifest(url, Manifest(files={rel: manifests[r].files[rel] for rel, r in sorted(owner.items())}),
                       plan.storage)
    step = int(local.name.split("-")[1])
    for old in complete_steps(plan):
        if old < step:
            delete_dir(join_location(plan.url, f"checkpoint-{old}"), plan.storage)


def stop_agreed(requested: bool) -> bool:
    """Whether any rank was asked to stop: a SIGTERM that reaches one node only stops every rank at the same
    step (a checkpoint needs them all)."""
    rank, world = _world()
    if world == 1:
        return requested
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1 if requested else 0], dtype=torch.int32,
                        device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


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
        if stop_agreed(self.stop.requested) and state.global_step < state.max_steps:
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        publish(self.plan, Path(args.output_dir) / f"checkpoint-{state.global_step}")
