"""Generation at scale: the real generate step (`components.generate.generate_shard`, hf backend, the demo's base
model and settings) on 1k, 4k and 16k arithmetic questions, each size in a fresh process. Time should grow
linearly with the questions and peak memory should not grow with them. Rationalization is off
(`generate_settings(rationalize=False)`): what is measured is generation, as in the earlier results.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000 4000 16000] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from results_table import publish  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from components.core.artifact_files import EXAMPLES
from components.demo.builtin import ASSETS
from components.core.rows import write_rows
from components.tasks.arithmetic import make_example, random_operand
from components.generate import generate_shard
from pipelines.config import load_config
import random
n, work = int(sys.argv[1]), Path(sys.argv[2])
config = load_config(None)  # the demo's settings: 1-5 digit sums, batch 64, 200 new tokens at most
rng = random.Random(0)
def examples():  # written as made: the step's input file is the data, the benchmark holds none of it
    for i in range(n):
        d = rng.randint(config.task.min_digits, config.task.max_digits)
        yield make_example(random_operand(rng, d), random_operand(rng, d), f"q{i}")
write_rows(work / "train" / EXAMPLES, examples())
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
stats = generate_shard(config.generate_settings(rationalize=False), 1, str(work / "train"), str(ASSETS), str(ASSETS),
                       str(work / "out"))
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "seconds": seconds, "peak_mb": peak / 1024, "loaded_mb": before / 1024,
                  "solved": stats["solved"]}))
"""


def measure(n: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        out = subprocess.run([sys.executable, "-c", CHILD, str(n), work], cwd=ROOT, capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    ap.add_argument("--append", type=Path, default=None)
    args = ap.parse_args()
    results = [measure(n) for n in args.sizes]
    base = results[0]
    lines = [
        "",
        "## Scale: generation time and peak memory by number of questions",
        "",
        f"`.venv/bin/python benchmarks/bench_scale.py --sizes {' '.join(map(str, args.sizes))}` — "
        f"{platform.machine()}, {os.cpu_count()} cores; the real generate step with the demo's settings and base "
        "model, one fresh process per size (peak RSS of that process; \"loaded\" = after imports and data, "
        "before generating). Linear time means a flat time per 1k questions.",
        "",
        "| questions | seconds | s per 1k questions | time vs linear from the smallest | peak RSS MB | loaded MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        linear = base["seconds"] * r["n"] / base["n"]
        lines.append(f"| {r['n']:,} | {r['seconds']:.0f} | {r['seconds'] / r['n'] * 1000:.1f} | "
                     f"{r['seconds'] / linear:.2f}× | {r['peak_mb']:.0f} | {r['loaded_mb']:.0f} |")
    text = "\n".join(lines) + "\n"
    publish(text, args.append)


if __name__ == "__main__":
    main()
