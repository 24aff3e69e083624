"""Training throughput and peak memory: our train step's `fit` (transformers Trainer, completion-only loss,
random batches sorted longest first within a step, on CPU each step's batch in ~1k-token passes with
accumulated gradients) against TRL's `SFTTrainer` on the same model (the demo's tiny base model, full
fine-tuning), the same kept set (prompt + completion rows) and the same steps, batch size and learning rate.
TRL runs with its `SFTConfig` defaults otherwise, which include activation checkpointing and bf16 autocast
(ours trains in fp32 without recomputation). Each run is its own process, so peak RSS is that method's alone.

    .venv/bin/python benchmarks/bench_training.py [--steps 60] [--repeats 3] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_table import publish  # benchmarks/ is on sys.path when a script runs

ROWS = 480
BATCH = 16
LR = 5e-4


def kept_set():
    from components.core.rows import TrainExample
    from components.tasks.arithmetic import ArithmeticConfig, ArithmeticTask

    task = ArithmeticTask(ArithmeticConfig(min_digits=1, max_digits=5, train_size=ROWS))
    return [TrainExample(id=e.id, source="generation", prompt=task.question(e, hint=False, direct=False),
                         completion=task.target(e, direct=False)) for e in task.load("train")]


def run_one(method: str, steps: int) -> dict:
    import torch

    from components.demo.builtin import ASSETS
    from components.models.loading import load_model

    torch.manual_seed(0)
    model, tok = load_model(ASSETS, ASSETS, trainable=True)
    rows = kept_set()
    with tempfile.TemporaryDirectory() as work:
        t = time.perf_counter()
        if method == "ours":
            from components.training.fit import encode_example, fit

            fit(model, tok, rows, max_steps=steps, output_dir=work, learning_rate=LR, batch_size=BATCH)
            lengths = [len(encode_example(tok, r.prompt, r.completion, 1024)["input_ids"]) for r in rows]
        else:
            from datasets import Dataset
            from trl import SFTConfig, SFTTrainer

            data = Dataset.from_list([{"prompt": r.prompt, "completion": r.completion} for r in rows])
            args = SFTConfig(output_dir=work, max_steps=steps, per_device_train_batch_size=BATCH,
                             learning_rate=LR, lr_scheduler_type="constant", logging_steps=10, save_strategy="no",
                             report_to=[], use_cpu=True, max_length=1024, packing=False, disable_tqdm=True)
            trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
            trainer.train()
            lengths = [len(tok(r.prompt + r.completion, add_special_tokens=False)["input_ids"]) + 1 for r in rows]
        seconds = time.perf_counter() - t
    tokens = statistics.mean(lengths) * BATCH * steps  # real (non-pad) tokens the optimizer steps consumed
    return {"seconds": seconds, "tokens_per_s": tokens / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--append", type=Path, default=None)
    ap.add_argument("--child", choices=["ours", "trl"], default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.steps)))
        return
    runs: dict[str, list[dict]] = {"trl": [], "ours": []}
    for _ in range(args.repeats):
        for method in runs:
            out = subprocess.run([sys.executable, __file__, "--child", method, "--steps", str(args.steps)],
                                 capture_output=True, text=True, check=True)
            runs[method].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in runs.items()}
    lines = [
        "## Training: our train step vs TRL's SFTTrainer",
        "",
        f"`.venv/bin/python benchmarks/bench_training.py --steps {args.steps} --repeats {args.repeats}` — "
        f"{platform.machine()}, torch CPU; the demo's tiny base model, full fine-tuning, {ROWS} arithmetic "
        f"prompt+completion rows, batch {BATCH}, {args.steps} steps, loss on completions only in both "
        "(TRL's prompt-completion format; TRL with its SFTConfig defaults, i.e. activation checkpointing and bf16 "
        "autocast; ours fp32, CPU micro-batches of ~1k tokens). Median of the repeats, each run in its own process "
        "(peak RSS).",
        "",
        "| method | median s | tokens/s | vs TRL | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for name, label in (("trl", "TRL SFTTrainer 1.16.0"), ("ours", "ours (components.training.fit.fit)")):
        m = med[name]
        lines.append(f"| {label} | {m['seconds']:.1f} | {m['tokens_per_s']:.0f} | "
                     f"{m['tokens_per_s'] / med['trl']['tokens_per_s']:.2f}× | {m['peak_rss_mb']:.0f} |")
    text = "\n".join(lines) + "\n"
    publish(text, args.append)


if __name__ == "__main__":
    main()
