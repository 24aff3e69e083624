"""The demo's wall time, side by side: `make demo`'s run (STaR and its baselines, the default configuration) of an
earlier commit and of this checkout, one right after the other on this machine, and where each run's time went
by kind of step (from each run's own `run.log`).

The earlier commit runs from a git worktree of it, in this checkout's environment (`.venv`), with the worktree
first on the path; both runs use the same seed and write to `--out`.

    .venv/bin/python benchmarks/bench_demo.py --baseline 182c7c7 [--out runs/side-by-side] [--append FILE]
    .venv/bin/python benchmarks/bench_demo.py --logs OLD/run.log NEW/run.log   # only tabulate two runs' logs
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from results_table import publish  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
EVENT = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) - INFO - (?:Executing task '([a-z0-9-]+)'|Task '([a-z0-9-]+)' "
                   r"finished|(Running pipeline)|Pipeline .* (finished))")
KINDS = {"train-op": "train", "generate-op": "generate + rationalize", "evaluate-op": "evaluate"}


def per_kind(log: str) -> tuple[float, dict[str, float]]:
    """(wall seconds, seconds by kind of step) of a finished kfp.local run log."""
    start = end = None
    began: dict[str, float] = {}
    spent: dict[str, float] = defaultdict(float)
    for raw in log.splitlines():
        m = EVENT.match(ANSI.sub("", raw).strip())
        if not m:
            continue
        t = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
        if m.group(4):
            began[m.group(4)] = t
        elif m.group(5) and m.group(5) in began:
            task = m.group(5)
            kind = KINDS.get(re.sub(r"(-[0-9]+)+$", "", task), "other steps")
            spent[kind] += (t - began.pop(task)) % 86400
        elif m.group(6):
            start = t
        elif m.group(7):
            end = t
    if start is None or end is None:
        raise SystemExit("not a finished kfp.local run log")
    return (end - start) % 86400, dict(spent)


def run_demo(checkout: Path, out: Path, env: dict[str, str]) -> Path:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--out", str(out)], cwd=checkout, env=env,
                   check=True)
    print(f"{checkout}: {time.monotonic() - started:.0f} s")
    return out / "run.log"


def table(runs: dict[str, Path]) -> str:
    parsed = {name: per_kind(log.read_text(encoding="utf-8", errors="replace")) for name, log in runs.items()}
    names = list(parsed)
    kinds = ["train", "generate + rationalize", "evaluate", "other steps"]
    head = "| | " + " | ".join(f"{n} s | share" for n in names) + " | new vs old |"
    lines = [head, "|---|" + "---|---|" * len(names) + "---|"]
    (old_wall, old_kinds), (new_wall, new_kinds) = parsed[names[0]], parsed[names[-1]]
    rows = [("wall time", old_wall, new_wall, {n: parsed[n][0] for n in names})]
    rows += [(k, old_kinds.get(k, 0.0), new_kinds.get(k, 0.0), {n: parsed[n][1].get(k, 0.0) for n in names})
             for k in kinds]
    for label, old, new, by_run in rows:
        cells = " | ".join(f"{by_run[n]:.0f} | {by_run[n] / parsed[n][0]:.0%}" for n in names)
        lines.append(f"| {label} | {cells} | {new / old:.0%} |" if old else f"| {label} | {cells} | – |")
    lines.append("| between steps (kfp.local) | " + " | ".join(
        f"{parsed[n][0] - sum(parsed[n][1].values()):.0f} | "
        f"{(parsed[n][0] - sum(parsed[n][1].values())) / parsed[n][0]:.0%}" for n in names) + " | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="the earlier commit to run first")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "side-by-side")
    ap.add_argument("--logs", type=Path, nargs=2, help="tabulate these two run logs (earlier, then new) only")
    ap.add_argument("--append", type=Path, default=None)
    args = ap.parse_args()
    if args.logs:
        runs = {"old": args.logs[0], "new": args.logs[1]}
        command = f"--logs {args.logs[0]} {args.logs[1]}"
    else:
        if not args.baseline:
            raise SystemExit("give --baseline COMMIT (or --logs OLD NEW)")
        worktree = Path(tempfile.mkdtemp(prefix="star-baseline-")) / "checkout"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], cwd=ROOT, check=True)
        try:
            old_env = {**os.environ, "PYTHONPATH": str(worktree)}
            runs = {f"old ({args.baseline})": run_demo(worktree, args.out / "old", old_env)}
            runs["new"] = run_demo(ROOT, args.out / "new", dict(os.environ))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
        command = f"--baseline {args.baseline}"
    load = os.getloadavg()[0]
    publish("\n".join([
        "## The demo, side by side",
        "",
        f"`.venv/bin/python benchmarks/bench_demo.py {command}` — `make demo`'s run (seed 0, STaR with both "
        f"baselines) of each version, one right after the other, {os.cpu_count()} cores, load average {load:.1f} "
        "at the end; seconds by kind of step from each run's `run.log` (a step's time includes starting its "
        "process and imports).",
        "",
        table(runs),
        "",
    ]), args.append)


if __name__ == "__main__":
    main()
