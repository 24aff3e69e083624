"""Stopping cleanly when Kubernetes stops a pod."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def terminate_raises() -> Iterator[None]:
    """Within this block SIGTERM (a pod being stopped, a step timing out) raises SystemExit, so `finally`
    clauses run and clean up what the step started."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
