"""One training process of a distributed fine-tuning run: `python -m components.training.worker --spec SPEC`.

Started by `torchrun` or the `deepspeed` launcher (one process per GPU), on one pod or on every pod of a
TrainJob / PyTorchJob. Each rank builds the starting model exactly as the single-process train step does
(`components.training.starting_model`), trains it with `components.training.fit.fit` under DeepSpeed ZeRO, and rank 0
alone saves the LoRA adapter (or the full model) and then the result file, which marks the run as complete.

Paths in the spec are local paths or object-storage URLs (`s3://`, `gs://`, ...: read and written through
`components.storage`). URLs are downloaded once per node (the first local rank to take the lock does it) and
the output is uploaded by rank 0.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from components import storage
from components.core.errors import StarError
from components.storage import StorageConfig, is_remote, local_path, read_text, write_text
from components.training.checkpoints import CheckpointPlan
from components.training.config import TrainingConfig

if TYPE_CHECKING:  # fit imports torch; steps that train nothing import this module (through trainjob)
    from components.training.fit import FitResult

COMPLETE = ".star-staged"


class WorkerSpec(BaseModel):
    """Everything a worker needs, written to a JSON file (or object) the launcher passes as `--spec`."""

    model_config = ConfigDict(extra="forbid")

    #: What and how to train (the run configuration's `training` section), the run's seed, and how to reach
    #: object storage for the paths below that are URLs.
    training: TrainingConfig
    seed: int
    storage: StorageConfig = Field(default_factory=StorageConfig)
    iteration: int = Field(ge=1)
    #: JSONL of `TrainExample` rows.
    examples: str
    #: The base-model artifact and the model training starts from (the same path when starting from the base).
    base_dir: str
    previous_dir: str
    #: Where rank 0 saves the adapter or model.
    out_dir: str
    #: Where rank 0 writes the `FitResult` JSON, last: its presence means the run finished.
    result: str
    max_steps: int = Field(ge=0)
    #: DeepSpeed config (None: plain DDP / one process).
    deepspeed: dict[str, Any] | None = None
    label: str = "train"
    #: Where every rank checkpoints and resumes from (None: a stopped run starts over).
    checkpoints: CheckpointPlan | None = None


class WorkerResult(BaseModel):
    """What rank 0 reports when training finished (written last, after the model)."""

    steps: int
    mean_loss: float | None
    world_size: int
    #: torch.distributed backend the ranks talked over (nccl on GPU, gloo on CPU), "none" for one process.
    backend: str
    #: DeepSpeed set up its communication layer, i.e. the DeepSpeed engine trained the model.
    deepspeed: bool

    def fit_result(self) -> FitResult:
        from components.training.fit import FitResult

        return FitResult(steps=self.steps, mean_loss=self.mean_loss)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def download(path: str, local: Path) -> Path:
    """Copy the folder (uploaded with its manifest; verified) or the single file at URL `path` to `local`."""
    if storage.read_manifest(path) is not None:
        storage.download_dir(path, local)
        return local
    data = storage.read_bytes(path)
    if data is None:
        raise StarError(f"{path} is neither a complete folder nor a file.")
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    return local


def upload(local: Path, path: str) -> None:
    """Copy a local folder (files, then its manifest) or file to `path`, a URL or a local path."""
    if local.is_dir():
        storage.upload_dir(local, local_path(path))
    else:
        storage.write_bytes(local_path(path), local.read_bytes())


def remove(path: str) -> None:
    """Delete the folder at URL `path` (missing is fine)."""
    storage.delete_dir(path)


def stage_in(path: str, root: Path) -> str:
    """A local copy of `path` (a file or a folder): local paths are returned as they are; a URL is downloaded
    once into `root` (keyed by the URL, so the same URL always lands in the same folder) under a file lock, so
    the ranks of one node share one download."""
    if not is_remote(path):
        return local_path(path)
    key = hashlib.sha256(path.encode()).hexdigest()[:16]
    marker = root / key / COMPLETE
    with _locked(root / f"{key}.lock"):
        if not marker.exists():
            local = download(path, root / key / "data" / (Path(path.rstrip("/")).name or "data"))
            marker.write_text(str(local))
    return marker.read_text()


def rank_info() -> tuple[int, int, int]:
    """(global rank, local rank, world size) as torchrun and the deepspeed launcher set them."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), int(
        os.environ.get("WORLD_SIZE", "1")
    )


def _zero3(ds: dict[str, Any] | None) -> bool:
    return bool(ds) and int((ds or {}).get("zero_optimization", {}).get("stage", 0)) == 3


def save_model(model: Any, tokenizer: Any, out: Path, *, full: bool, zero3: bool, rank: int) -> None:
    """Rank 0 writes the adapter (LoRA) or the whole model and its tokenizer (full). Under ZeRO-3 the
    parameters are spread over the ranks: every rank takes part in gathering them, one at a time, and rank 0
    collects them on the CPU."""
    state: dict[str, Any] | None = None
    if zero3:
        import deepspeed

        state = {}
        for name, param in model.named_parameters():
            if not (full or param.requires_grad):
                continue
            with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
                if rank == 0:
                    state[name] = param.detach().cpu().clone()
    if rank != 0:
        return
    out.mkdir(parents=True, exist_ok=True)
    if state is None:
        model.save_pretrained(out)
    elif full:
        # Buffers are whole on every rank; partitioned parameters show up empty here (a tied weight, which
        # named_parameters lists once, too): they come from the gathered copies, and save_pretrained re-ties.
        merged = {k: v.detach().cpu() for k, v in model.state_dict().items() if v.numel() > 0}
        merged.update(state)
        model.save_pretrained(out, state_dict=merged)
    else:
        model.save_pretrained(out, state_dict=state)
    if full:
        tokenizer.save_pretrained(out)


def run(spec: WorkerSpec, stage_root: Path | None = None) -> WorkerResult | None:
    """Train on this rank; rank 0 saves and returns the result (other ranks return None)."""
    import torch.distributed as dist

    from components.core.rows import TrainExample, read_rows
    from components.core.seeds import training_seed
    from components.storage import configure
    from components.training.fit import fit
    from components.training.starting_model import starting_model

    rank, _, _ = rank_info()
    configure(spec.storage)
    t = spec.training
    root = stage_root or Path(tempfile.gettempdir()) / "star-stage"
    examples = read_rows(stage_in(spec.examples, root), TrainExample)
    base_dir = stage_in(spec.base_dir, root)
    previous_dir = stage_in(spec.previous_dir, root)
    model, tok, _ = starting_model(t, spec.seed, spec.iteration, base_dir, previous_dir)
    with tempfile.TemporaryDirectory(prefix="star-train-") as work:
        result = fit(
            model, tok, examples, max_steps=spec.max_steps, output_dir=work, learning_rate=t.learning_rate,
            batch_size=t.batch_size, gradient_accumulation_steps=t.gradient_accumulation_steps,
            max_length=t.max_length, warmup_ratio=t.warmup_ratio, lr_schedule=t.lr_schedule,
            weight_decay=t.weight_decay,
            seed=training_seed(spec.seed, spec.iteration), label=spec.label, deepspeed=spec.deepspeed,
            checkpoints=spec.checkpoints,
        )
        local_out = Path(work) / "model" if is_remote(spec.out_dir) else Path(local_path(spec.out_dir))
        save_model(model, tok, local_out, full=t.method == "full", zero3=_zero3(spec.deepspeed), rank=rank)
        if rank == 0 and is_remote(spec.out_dir):
            upload(local_out, spec.out_dir)
    distributed = dist.is_available() and dist.is_initialized()
    if distributed:
        dist.barrier()
    if rank != 0:
        return None
    report = WorkerResult(
        steps=result.steps, mean_loss=result.mean_loss,
        world_size=dist.get_world_size() if distributed else 1,
        backend=str(dist.get_backend()) if distributed else "none",
        deepspeed=_deepspeed_initialized(),
    )
    write_text(spec.result, report.model_dump_json())
    return report


def _deepspeed_initialized() -> bool:
    try:
        import deepspeed.comm
    except ImportError:
        return False
    return bool(deepspeed.comm.is_initialized())


def read_result(path: str) -> WorkerResult:
    """Rank 0's result; FileNotFoundError when there is none (training did not finish)."""
    text = read_text(path)
    if text is None:
        raise FileNotFoundError(f"{path} does not exist: rank 0 wrote no result")
    return WorkerResult.model_validate_json(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One rank of a distributed STaR fine-tuning run.")
    parser.add_argument("--spec", required=True, help="path or URL of the worker spec (JSON)")
    args = parser.parse_args(argv)
    rank, _, _ = rank_info()
    if rank != 0:  # one progress line per run, not one per rank
        sys.stdout = open(os.devnull, "w")
    text = read_text(args.spec)
    if text is None:
        raise StarError(f"The worker spec {args.spec} does not exist; the train step writes it before starting "
                        "the workers.")
    spec = WorkerSpec.model_validate_json(text)
    run(spec)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
