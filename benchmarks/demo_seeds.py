"""The demo's result across seeds: `star run` on the embedded default (STaR, the ablation without
rationalization and the same-compute seed-set control) for each seed, and one table of held-out accuracy.

    .venv/bin/python benchmarks/demo_seeds.py --seeds 0 1 2 [--out runs] [--write benchmarks/DEMO_SEEDS.md]
        [--reuse SEED=RUN_DIR ...]   # a finished `star run` of that seed with this code (e.g. bench_demo.py's)

Targets (issue "Prove it"): final STaR accuracy >= iteration 0 + 20 points and >= the control's final + 10
points, for every seed.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_seed(seed: int, out: Path, reuse: Path | None = None) -> tuple[dict, float]:
    if reuse is not None:  # the run's own log has its wall time
        from bench_demo import per_kind

        wall, _ = per_kind((reuse / "run.log").read_text(encoding="utf-8", errors="replace"))
        return json.loads((reuse / "comparison.json").read_text()), wall
    folder = out / f"demo-seed-{seed}"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--out", str(folder), "--set", f"seed={seed}"],
                   cwd=ROOT, check=True)
    return json.loads((folder / "comparison.json").read_text()), time.monotonic() - started


def table(results: dict[int, tuple[dict, float]]) -> str:
    lines = [
        "| seed | iteration 0 | STaR (per iteration) | no rationalization (final) | seed-set control (final) "
        "| STaR − iteration 0 | STaR − control | targets met | wall time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for seed, (arms, seconds) in sorted(results.items()):
        star, ablation, control = arms["star"], arms["no_rationalization"], arms["seed_control"]
        base, final = star[0]["eval_accuracy"], star[-1]["eval_accuracy"]
        gain, over = final - base, final - control[-1]["eval_accuracy"]
        curve = " → ".join(f"{r['eval_accuracy']:.1%}" for r in star)
        met = "yes" if gain >= 0.20 and over >= 0.10 else "no"
        lines.append(f"| {seed} | {base:.1%} | {curve} | {ablation[-1]['eval_accuracy']:.1%} | "
                     f"{control[-1]['eval_accuracy']:.1%} | {gain * 100:+.1f} pts | {over * 100:+.1f} pts | {met} | "
                     f"{seconds / 60:.1f} min |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "runs")
    parser.add_argument("--write", type=Path, help="write the table (with the machine described) to this file")
    parser.add_argument("--reuse", nargs="*", default=[], metavar="SEED=RUN_DIR",
                        help="take this seed's result from a finished run of it (same code and configuration)")
    args = parser.parse_args()
    reuse = {int(k): Path(v) for k, v in (item.split("=", 1) for item in args.reuse)}
    results = {seed: run_seed(seed, args.out, reuse.get(seed)) for seed in args.seeds}
    text = table(results)
    print(text)
    if args.write:
        machine = f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}"
        args.write.write_text(
            "# The demo across seeds\n\n"
            f"`.venv/bin/python benchmarks/demo_seeds.py --seeds {' '.join(map(str, args.seeds))}"
            f"{''.join(f' --reuse {k}={v}' for k, v in reuse.items())}` on {machine}; "
            "the embedded default configuration (`pipelines/demo.yaml`), held-out accuracy on its eval split.\n\n"
            f"{text}\n"
        )


if __name__ == "__main__":
    main()
