"""The XLA tests run in `.venv-xla` (the TPU image's dependency set) on XLA's CPU device, split into several
virtual devices so that SPMD really shards the model and the batch."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("PJRT_DEVICE", "CPU")
os.environ.setdefault("CPU_NUM_DEVICES", "4")

DEVICES = int(os.environ["CPU_NUM_DEVICES"])


@pytest.fixture(scope="session", autouse=True)
def xla_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """XLA started for the session before any test computes: SPMD over the devices, and the persistent
    compilation cache in a fresh folder (XLA takes it once per process)."""
    from components.training import xla

    cache = tmp_path_factory.mktemp("xla-cache")
    assert xla.on_xla() and xla.start(str(cache)) == DEVICES
    return cache
