"""Training throughput and peak memory: our train step's `fit` (transformers Trainer, completion-only loss,
random batches sorted longest first within a step, on CPU each step's batch in ~1k-token passes with
accumulated gradients) against TRL's `SFTTrainer` on the same model (the demo's tiny base model, full
fine-tuning), the same kept set (prompt + completion rows) and the same steps, batch size and learning rate.
TRL runs with its `SFTConfig` defaults otherwise, which include activation checkpointing and bf16 autocast;
ours runs as the train step does (`training.cpu_precision: auto`: bf16 autocast for the linear layers where the
CPU has bf16 hardware, attention in float32, no recomputation). Each run is its own process, so peak RSS is that
method's alone. MFU = model FLOPs (6 per parameter per token, plus attention's 6·layers·length·hidden, for the
real tokens) per second over the machine's matmul peak measured here (2048³ products, float32 and bf16).

    .venv/bin/python benchmarks/bench_training.py [--steps 60] [--repeats 3] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
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
            from components.training.fit import cpu_bf16, encode_example, fit

            loss = fit(model, tok, rows, max_steps=steps, output_dir=work, learning_rate=LR, batch_size=BATCH,
                       cpu_bf16=cpu_bf16("auto")).mean_loss
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
            logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
            loss = sum(logged) / len(logged)
            lengths = [len(tok(r.prompt + r.completion, add_special_tokens=False)["input_ids"]) + 1 for r in rows]
        seconds = time.perf_counter() - t
    tokens = statistics.mean(lengths) * BATCH * steps  # real (non-pad) tokens the optimizer steps consumed
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    flops_per_token = 6 * params + 6 * c.num_hidden_layers * statistics.mean(lengths) * c.hidden_size
    return {"seconds": seconds, "tokens_per_s": tokens / seconds, "flops_per_s": flops_per_token * tokens / seconds,
            "mean_loss": loss, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def matmul_peak(dtype_name: str) -> float:
    """FLOP/s of a 2048³ matrix product in this dtype (best of 5)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * 2048**3 / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--append", type=Path, default=None)
    ap.add_argument("--child", choices=["ours", "trl", "peak"], default=None)
    args = ap.parse_args()
    if args.child == "peak":
        print(json.dumps({"float32": matmul_peak("float32"), "bfloat16": matmul_peak("bfloat16")}))
        return
    if args.child:
        print(json.dumps(run_one(args.child, args.steps)))
        return
    runs: dict[str, list[dict]] = {"trl": [], "ours": []}
    for _ in range(args.repeats):
        for method in runs:
            out = subprocess.run([sys.executable, __file__, "--child", method, "--steps", str(args.steps)],
                                 capture_output=True, text=True, check=True)
            runs[method].append(json.loads(out.stdout.strip().splitlines()[-1]))
    peak_out = subprocess.run([sys.executable, __file__, "--child", "peak"], capture_output=True, text=True,
                              check=True)
    peak = json.loads(peak_out.stdout.strip().splitlines()[-1])
    med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in runs.items()}
    spread = {m: (min(r["tokens_per_s"] for r in rs), max(r["tokens_per_s"] for r in rs)) for m, rs in runs.items()}
    lines = [
        "## Training: our train step vs TRL's SFTTrainer",
        "",
        f"`.venv/bin/python benchmarks/bench_training.py --steps {args.steps} --repeats {args.repeats}` — "
        f"{platform.machine()}, torch CPU ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the "
        f"end); the demo's tiny base model, full fine-tuning, {ROWS} arithmetic prompt+completion rows, batch "
        f"{BATCH}, {args.steps} steps, loss on completions only in both (TRL's prompt-completion format; TRL with "
        "its SFTConfig defaults, i.e. activation checkpointing and bf16 autocast; ours as the train step runs, "
        "CPU micro-batches of ~1k tokens). Median and range of the repeats, each run in its own process (peak "
        f"RSS). Matmul peak measured here: {peak['float32'] / 1e9:.0f} GFLOP/s float32, "
        f"{peak['bfloat16'] / 1e9:.0f} GFLOP/s bf16.",
        "",
        "| method | median s | tokens/s (range) | vs TRL | MFU vs fp32 / bf16 peak | mean loss | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in (("trl", "TRL SFTTrainer 1.16.0"), ("ours", "ours (components.training.fit.fit)")):
        m = med[name]
        lo, hi = spread[name]
        lines.append(f"| {label} | {m['seconds']:.1f} | {m['tokens_per_s']:.0f} ({lo:.0f}–{hi:.0f}) | "
                     f"{m['tokens_per_s'] / med['trl']['tokens_per_s']:.2f}× | "
                     f"{m['flops_per_s'] / peak['float32']:.0%} / {m['flops_per_s'] / peak['bfloat16']:.0%} | "
                     f"{m['mean_loss']:.4f} | {m['peak_rss_mb']:.0f} |")
    text = "\n".join(lines) + "\n"
    publish(text, args.append)


if __name__ == "__main__":
    main()
