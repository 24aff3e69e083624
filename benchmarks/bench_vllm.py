"""The cluster's generation engine measured, not assumed: vLLM's CPU build against our `hf` backend on the demo's
generation step (the demo's base model, its 1,000 training questions, greedy, 200 new tokens at most, the task's
stop strings, `generation.batch_size` 64 for hf). Both run in one process of the vLLM environment with the same
number of torch threads; the outputs are checked to be the same; each repeat generates every question again
(vLLM's prefix cache is emptied first). Reported: median and range of the repeats, useful tokens/s (completion
tokens up to the stop string), and the start-up (model load, engine start) apart.

    make .venv-vllm/bin/star
    VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_OMP_THREADS_BIND=nobind \\
        .venv-vllm/bin/python benchmarks/bench_vllm.py [--questions 1000] [--repeats 3] [--threads 1] \\
        [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from results_table import publish  # benchmarks/ is on sys.path when a script runs


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--append", type=Path, default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import vllm

    from components.demo.builtin import ASSETS
    from components.generation import load_generator
    from components.generation.sampling import SamplingConfig
    from components.generation.vllm import VLLMConfig, VLLMGenerator
    from components.tasks import make_task
    from pipelines.config import load_config

    demo = load_config(None)
    task = make_task(demo.task)
    questions = [task.question(e, hint=False, direct=False) for e in task.load("train")][: args.questions]
    prefix = task.prefix(hint=False, direct=False, use_few_shot=demo.generation.uses_few_shot(1))
    greedy = SamplingConfig(max_new_tokens=demo.generation.max_new_tokens)

    load_hf, hf = timed(lambda: load_generator("hf", ASSETS, ASSETS, batch_size=demo.generation.batch_size))
    load_vllm, engine = timed(lambda: VLLMGenerator(str(ASSETS), VLLMConfig(cpu_threads=args.threads)))
    assert isinstance(engine, VLLMGenerator)

    def run_vllm() -> list[list[str]]:
        engine.llm.reset_prefix_cache()
        return engine.generate(prefix, questions, greedy, task.stop, label="vllm")

    def run_hf() -> list[list[str]]:
        return hf.generate(prefix, questions, greedy, task.stop, label="hf")  # type: ignore[attr-defined]

    times: dict[str, list[float]] = {"hf backend (transformers)": [], "vllm backend (vLLM CPU build)": []}
    outputs: dict[str, object] = {}
    for _ in range(args.repeats):
        for name, fn in zip(times, (run_hf, run_vllm), strict=True):
            seconds, outputs[name] = timed(fn)
            times[name].append(seconds)
    hf_out, vllm_out = outputs.values()
    same = hf_out == vllm_out
    tokens = sum(len(engine._encode(o[0])) for o in vllm_out)  # type: ignore[union-attr]
    base = statistics.median(times["hf backend (transformers)"])
    load = os.getloadavg()
    lines = [
        "## Generation engines: vLLM's CPU build vs our `hf` backend on the demo's generation step",
        "",
        f"`VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_OMP_THREADS_BIND=nobind "
        f".venv-vllm/bin/python benchmarks/bench_vllm.py --questions {args.questions} --repeats {args.repeats} "
        f"--threads {args.threads}` — {platform.machine()}, torch {torch.__version__}, vLLM {vllm.__version__}, "
        f"{args.threads} torch thread(s) for both, load average {load[0]:.1f} at the end (the machine was shared); "
        f"the demo's base model, {len(questions)} of the demo's training questions (1-5 digits, no few-shot "
        f"prefix), greedy, {greedy.max_new_tokens} new tokens at most; identical outputs: "
        f"{'yes' if same else 'NO'}; {tokens} useful tokens (completions up to the stop string). Median and range "
        f"of {args.repeats} repeats; start-up (model load; engine start with its KV cache) measured once, apart.",
        "",
        "| backend | start-up s | median s | range s | useful tokens/s | vs hf |",
        "|---|---|---|---|---|---|",
    ]
    for (name, ts), start in zip(times.items(), (load_hf, load_vllm), strict=True):
        med = statistics.median(ts)
        lines.append(f"| {name} | {start:.1f} | {med:.2f} | {min(ts):.2f}–{max(ts):.2f} | {tokens / med:.0f} | "
                     f"{base / med:.2f}× |")
    publish("\n".join(lines) + "\n", args.append)
    if not same:
        raise SystemExit("the backends' outputs differ")


if __name__ == "__main__":
    main()
