"""Shared by the benchmark scripts: print a result section and, with `--append FILE`, add it to that file
(benchmarks/RESULTS.md), separated from what is there by a blank line."""

from __future__ import annotations

from pathlib import Path


def publish(text: str, append: Path | None) -> None:
    print(text)
    if append:
        with append.open("a") as f:
            f.write("\n" + text)
