"""The vLLM engine tests run in `.venv-vllm` with the environment the Makefile gives them (`make test`, or
`make test-vllm` for these alone): vLLM's CPU build, its engine in this process, a small KV cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

#: What the Makefile's VLLM_CPU_ENV sets; without it vLLM starts a second process and claims 11 GiB.
REQUIRED_ENV = ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND")


def pytest_configure(config: pytest.Config) -> None:
    missing = [name for name in REQUIRED_ENV if name not in os.environ]
    if missing:
        raise pytest.UsageError(f"tests/engines/vllm needs {', '.join(missing)} set as the Makefile sets them; "
                                "run them with `make test-vllm`.")


@pytest.fixture(scope="session")
def demo_model() -> Path:
    from components.demo.builtin import ASSETS

    return Path(ASSETS)


@pytest.fixture(scope="session")
def hf_base(demo_model: Path) -> Iterator[object]:
    """The `hf` backend on the demo's base model, as `make demo` generates with it."""
    from components.generation import load_generator

    yield load_generator("hf", demo_model, demo_model, batch_size=64)
