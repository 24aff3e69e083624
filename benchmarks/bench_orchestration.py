"""Share of a local run's wall time spent outside the steps' own work, read from the run's own log.

Per task, kfp.local's log has: the task start, the KFP executor's "Got executor_input" (the subprocess is up),
its "Wrote executor output file" (the step function returned) and the task end. Orchestration = wall time
minus the step functions' time, plus what importing libraries costs the run: a local run starts every step as a
fork of one server that imported torch, transformers, the Trainer and peft once (`pipelines/warm_steps.py`), so
the run pays that import once (counted whole, although the server imports while the first, model-free steps
run), and each step that loads a model (generate and rationalize, train, evaluate) pays only what it imports
beyond the server's set (counted once per such step). Both are measured here in fresh interpreters (medians).

    make demo && .venv/bin/python benchmarks/bench_orchestration.py runs/demo/run.log [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from results_table import publish  # benchmarks/ is on sys.path when a script runs

TASK = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - (Executing task|Task .* finished with status|Running pipeline|"
                  r"Pipeline .* finished)")
NAME = re.compile(r"Executing task '([a-z0-9-]+)'")
#: The steps whose function loads a model (and so imports torch and transformers); tasks are named after them.
MODEL_STEPS = ("generate-op", "train-op", "evaluate-op")
EXEC = re.compile(r"\[KFP Executor \d{4}-\d\d-\d\d (\d\d:\d\d:\d\d),(\d+) INFO\]: (Got executor_input|Wrote executor)")


def seconds(hms: str) -> float:
    t = datetime.strptime(hms, "%H:%M:%S.%f")
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def parse(log: str) -> tuple[float, float, int, int]:
    """(wall seconds, seconds inside step functions, steps, steps that load a model)."""
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    start = end = None
    inside = 0.0
    got: float | None = None
    steps = model_steps = 0
    task = ""
    for raw in log.splitlines():
        line = ansi.sub("", raw).strip()
        if m := NAME.search(line):
            task = m.group(1)
        if m := TASK.match(line):
            if m.group(2) == "Running pipeline":
                start = seconds(m.group(1))
            elif m.group(2).startswith("Pipeline"):
                end = seconds(m.group(1))
        elif m := EXEC.search(line):
            t = seconds(f"{m.group(1)}.{m.group(2)}")
            if m.group(3) == "Got executor_input":
                got = t
            elif got is not None:
                inside += t - got
                steps += 1
                model_steps += any(re.fullmatch(f"{k}(-[0-9]+)*", task) for k in MODEL_STEPS)
                got = None
    if start is None or end is None:
        raise SystemExit("not a finished kfp.local run log")
    return end - start, inside, steps, model_steps


def _timed(code: str, repeats: int) -> float:
    """Median seconds of `code`'s timed part (it prints them), each run in a fresh interpreter."""
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


STEP_IMPORTS = ("components.train, components.generate, components.evaluate, components.training.fit, "
                "components.generation.hf, components.models.loading")


def import_costs(repeats: int = 3) -> tuple[float, float]:
    """(the server's imports, once per run; what a model step imports beyond them, per step)."""
    once = _timed("import time; t = time.perf_counter()\nimport importlib, pipelines.warm_steps as w\n"
                  "[importlib.import_module(m) for m in w.PRELOAD]; print(time.perf_counter() - t)", repeats)
    per_step = _timed("import importlib, time, pipelines.warm_steps as w\n"
                      "[importlib.import_module(m) for m in w.PRELOAD]; t = time.perf_counter()\n"
                      f"import {STEP_IMPORTS}; print(time.perf_counter() - t)", repeats)
    return once, per_step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("log", type=Path)
    ap.add_argument("--append", type=Path, default=None)
    args = ap.parse_args()
    wall, inside, steps, model_steps = parse(args.log.read_text(encoding="utf-8"))
    once, per_step = import_costs()
    outside = wall - inside
    total = outside + once + per_step * model_steps
    text = "\n".join([
        "## Orchestration: share of the demo's wall time outside the steps' own work",
        "",
        f"`.venv/bin/python benchmarks/bench_orchestration.py {args.log}` on the log of a `make demo` run "
        f"({steps} steps, {model_steps} of which load a model).",
        "",
        "| measure | seconds | share of wall |",
        "|---|---|---|",
        f"| wall time of the run | {wall:.1f} | 100% |",
        f"| outside the step functions (process start, KFP executor, hand-over) | {outside:.1f} | "
        f"{outside / wall:.1%} |",
        f"| … plus the step server's imports, once ({once:.1f} s), and each model step's own ({per_step:.2f} s"
        f" each) | {total:.1f} | {total / wall:.1%} |",
        "",
    ])
    publish(text, args.append)


if __name__ == "__main__":
    main()
