"""What `star run` shows while kfp.local runs the pipeline: the whole log goes to a file, the console gets
task starts and ends and the steps' own lines (progress bars, results), without KFP's executor dumps."""

from __future__ import annotations

import io
import re
import sys
import threading
from pathlib import Path
from typing import TextIO

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NOISE = ("[KFP Executor", "Writing model shards", "Loading weights", "warnings.warn")


class ConsoleFilter(io.TextIOBase):
    """A stdout stand-in: every line to `log`; the lines a user wants to `console`. kfp.local runs the
    tasks of a ParallelFor in threads that print at once, so writes are serialized: text files are not
    thread-safe, and unguarded concurrent writes left broken UTF-8 in run.log."""

    def __init__(self, log: TextIO, console: TextIO) -> None:
        self.log, self.console = log, console
        self.buffer_ = ""
        self.in_dump = False  # inside the executor-input JSON or a task's outputs listing
        self.lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self.lock:
            self.log.write(text)
            self.buffer_ += text
            while "\n" in self.buffer_:
                line, self.buffer_ = self.buffer_.split("\n", 1)
                if self.keep(_ANSI.sub("", line)):
                    self.console.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        with self.lock:
            self.log.flush()
            self.console.flush()

    def keep(self, line: str) -> bool:
        stripped = line.strip()
        if "Got executor_input:" in line or "outputs:" in line and " - INFO - Task " in line:
            self.in_dump = True
            return False
        if self.in_dump:
            if line.startswith("    }") or line.startswith("----") or " - INFO - " in line:
                self.in_dump = False
            if " - INFO - " not in line:
                return False
        if not stripped or stripped.startswith(_NOISE) or "Streamed logs" in line or "Warning: " in line:
            return False
        if " - INFO - " in line:
            return any(k in line for k in ("Executing task", "finished with status", "Pipeline", "cache hit"))
        return True


def tee_to_log(path: Path, append: bool = False) -> tuple[ConsoleFilter, TextIO]:
    log = path.open("a" if append else "w", encoding="utf-8", buffering=1)  # line by line: `tail -f` works
    return ConsoleFilter(log, sys.stdout), log
