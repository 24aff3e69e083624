"""Progress bars that work in a terminal and in pod logs alike: one line per update, throttled."""

from __future__ import annotations

import sys
import time


class ProgressLine:
    """Prints `label ▕████░░░░░░▏  40%  200/500  12.3 it/s  eta 25s` at most every `every` seconds."""

    def __init__(self, label: str, total: int, unit: str = "it", every: float = 5.0, width: int = 24) -> None:
        self.label, self.total, self.unit, self.every, self.width = label, max(total, 0), unit, every, width
        self.done = 0
        self.start = time.monotonic()
        self.last = 0.0
        self.extra = ""

    def update(self, n: int = 1, extra: str = "") -> None:
        self.done += n
        if extra:
            self.extra = extra
        now = time.monotonic()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            self._print(now)

    def _print(self, now: float) -> None:
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(frac * self.width)
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        bar = "█" * filled + "░" * (self.width - filled)
        line = (
            f"{self.label} ▕{bar}▏ {frac:4.0%}  {self.done}/{self.total}  {rate:.1f} {self.unit}/s  "
            f"eta {eta:.0f}s"
        )
        if self.extra:
            line += f"  {self.extra}"
        print(line, file=sys.stdout, flush=True)
