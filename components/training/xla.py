"""Training on TPU through torch_xla: one process drives every chip of the host with SPMD, the model sharded over
them with FSDPv2 (transformers' `fsdp` with `xla_fsdp_v2`), bf16 autocast, batches padded to a few fixed
lengths, and XLA's persistent compilation cache kept between train steps.

XLA compiles one program per distinct input shape, so every shape the Trainer sees is one of a few: a step's
batch is always full (`fill_steps`) and each batch is padded to the smallest of `padding_buckets` that holds its
longest row. The compiled programs land in the persistent cache; `compile_cache` copies it from and back to a
folder or bucket, so the next iteration's train step (a new pod) loads them instead of compiling again.

The path is taken when torch_xla is installed and `PJRT_DEVICE` names its device (the TPU image sets
`PJRT_DEVICE=TPU`; the tests run it on XLA's CPU device with `PJRT_DEVICE=CPU` and `CPU_NUM_DEVICES`).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from components.core.errors import StarError
from components.storage import (
    StorageConfig,
    is_remote,
    join_location,
    list_objects,
    local_path,
    read_bytes,
    write_bytes,
)

#: The shortest padded length: rows shorter than this all pad to it.
SMALLEST_BUCKET = 64
#: Where compiled programs go inside the pod when no location outlives it (the image's default).
CACHE_ENV = "XLA_PERSISTENT_CACHE_PATH"

_started: dict[str, Any] = {}


def on_xla() -> bool:
    """True when training should run through torch_xla: it is installed and `PJRT_DEVICE` names a device."""
    return bool(os.environ.get("PJRT_DEVICE")) and importlib.util.find_spec("torch_xla") is not None


def start(cache_dir: str | None = None) -> int:
    """Prepare this process for XLA once, before any XLA tensor exists: the persistent compilation cache in
    `cache_dir` (else `$XLA_PERSISTENT_CACHE_PATH` when set, else none), then SPMD mode. Returns the number of
    devices SPMD spreads over (chips of the host; `CPU_NUM_DEVICES` on the CPU device). Later calls return the
    same count; asking for another cache folder than the first call's is an error (XLA reads it once)."""
    if _started:
        if cache_dir is not None and cache_dir != _started["cache"]:
            raise StarError(f"XLA's compilation cache is already {_started['cache']} in this process; it cannot "
                            f"move to {cache_dir}.")
        return int(_started["devices"])
    import torch_xla.runtime as xr

    cache = cache_dir or os.environ.get(CACHE_ENV) or None
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        xr.initialize_cache(cache, readonly=False)
    xr.use_spmd()
    _started.update(cache=cache, devices=xr.global_runtime_device_count())
    return int(_started["devices"])


def padding_buckets(max_length: int) -> list[int]:
    """The lengths batches are padded to: powers of two from `SMALLEST_BUCKET`, and `max_length` last."""
    out, n = [], SMALLEST_BUCKET
    while n < max_length:
        out.append(n)
        n *= 2
    return [*out, max_length]


def bucket_for(length: int, buckets: list[int]) -> int:
    """The smallest bucket that holds `length` tokens (rows are never longer than the last bucket)."""
    for b in buckets:
        if length <= b:
            return b
    raise ValueError(f"a row of {length} tokens is longer than the longest padding bucket ({buckets[-1]})")


def fill_steps(order: list[int], rows_per_step: int) -> list[int]:
    """`order` made a whole number of steps: the last, short step is filled with rows from the start of the
    order (cycling when there are fewer rows than a step), so every step has the same batch shape."""
    short = -len(order) % rows_per_step
    return order + [order[i % len(order)] for i in range(short)]


def trainer_arguments() -> dict[str, Any]:
    """What TrainingArguments needs for FSDPv2 over the SPMD mesh: transformers builds the mesh (one `fsdp`
    axis over all devices), shards the batch's first dimension over it and wraps the model's decoder layers
    (`_no_split_modules`); bf16 autocast; the plain AdamW (the fused one takes no XLA tensors)."""
    return {
        "fsdp": True,
        "fsdp_config": {"xla": True, "xla_fsdp_v2": True},
        "bf16": True,
        "optim": "adamw_torch",
        "use_cpu": False,
    }


def _fsdp_wrappers(model: Any) -> list[tuple[Any, str, Any]]:
    """(parent, name, wrapper) for every layer FSDPv2 wrapped in place inside `model`."""
    from torch_xla.experimental.spmd_fully_sharded_data_parallel import SpmdFullyShardedDataParallel

    return [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
            if isinstance(child, SpmdFullyShardedDataParallel)]


def retie(wrapped: Any) -> None:
    """Tie the input and output embeddings again (where the model ties them) after FSDPv2 moved the model to the
    devices: the move parts them, and they would train as two matrices, of which saving keeps one."""
    model = wrapped.module
    if hasattr(model, "tie_weights"):
        model.tie_weights()


@contextmanager
def _layers_unwrapped(model: Any) -> Iterator[Any]:
    """`model` with its wrapped layers put back as they were (the same, still sharded parameters), so that its
    weights have their own names (FSDPv2 adds `_orig_module.` to each); the wrappers return on exit."""
    wrappers = _fsdp_wrappers(model)
    for parent, name, wrapper in wrappers:
        setattr(parent, name, wrapper.module)
    try:
        yield model
    finally:
        for parent, name, wrapper in wrappers:
            setattr(parent, name, wrapper)


def save_checkpoint_weights(wrapped: Any, output_dir: str) -> None:
    """A checkpoint's weights saved as the unwrapped model saves them (the adapter alone for LoRA), gathered on
    the CPU, so resuming loads them into the model before it is wrapped again. (transformers 5.23 saves the
    FSDPv2 wrapper's own state dict, whose names match nothing on resume: the resumed run would silently start
    from the initial weights.)"""
    import torch_xla

    torch_xla.sync()
    with _layers_unwrapped(wrapped.module) as model:
        model.save_pretrained(output_dir, state_dict={k: v.cpu() for k, v in model.state_dict().items()})


def unwrap_to_cpu(model: Any) -> None:
    """After training: take FSDPv2's wrappers out of `model` (it wraps each decoder layer in place, which would
    put `_orig_module` into every saved weight's name) and gather the sharded weights back into this host's
    memory, where saving and the next step expect them."""
    import torch_xla

    torch_xla.sync()
    for parent, name, wrapper in _fsdp_wrappers(model):
        setattr(parent, name, wrapper.module)
    model.to("cpu")
    if hasattr(model, "tie_weights"):
        model.tie_weights()  # the move parts tied embeddings again


@contextmanager
def session(cache_location: str | None, storage: StorageConfig | None = None) -> Iterator[int]:
    """Around a train step: on XLA, the compilation cache from `cache_location` (see `compile_cache`) and the
    process started (`start`); yields the number of devices, 0 when not on XLA (nothing is done then)."""
    if not on_xla():
        yield 0
        return
    with compile_cache(cache_location, storage) as cache:
        yield start(cache)


def _files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}


@contextmanager
def compile_cache(location: str | None, storage: StorageConfig | None = None) -> Iterator[str | None]:
    """A local folder for XLA's persistent cache, filled from `location` (a folder or an s3:// / gs:// URL; None:
    no cache beyond the pod's `$XLA_PERSISTENT_CACHE_PATH`). On the way out, the programs compiled meanwhile are
    copied back (each file is written whole, so concurrent train steps at worst compile the same program twice)."""
    if location is None:
        yield None
        return
    if not is_remote(location):
        yield local_path(location)
        return
    with tempfile.TemporaryDirectory(prefix="xla-cache-") as tmp:
        local = Path(tmp)
        remote = list_objects(location, storage)
        for name in remote:
            data = read_bytes(join_location(location, name), storage)
            if data is not None:
                (local / name).parent.mkdir(parents=True, exist_ok=True)
                (local / name).write_bytes(data)
        print(f"XLA compilation cache: {len(remote)} program(s) from {location}", flush=True)
        try:
            yield str(local)
        finally:
            new = {n: p for n, p in _files(local).items() if n not in remote}
            for name, path in new.items():
                write_bytes(join_location(location, name), path.read_bytes(), storage)
            print(f"XLA compilation cache: {len(new)} new program(s) to {location}", flush=True)
