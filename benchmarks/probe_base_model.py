"""Probe a candidate recipe for the demo's base model: build it with `make base-model`'s code from a recipe file,
then measure held-out accuracy by digit count, greedy and pass@k, on the demo's own eval split.

    .venv/bin/python benchmarks/probe_base_model.py benchmarks/probes/<recipe>.json [--samples 8]
        [--cache-dir runs/probes] [--append benchmarks/BASE_MODEL_PROBES.md]

STaR can only bootstrap where the base model is sometimes right: a digit count at 0% pass@k gives it nothing to
keep by generation, and rationalization keeps only what the model gets right when shown the answer (greedy with
the hint line). Probe a recipe before tuning the STaR side of the demo on it. A recipe is built once and cached,
as a run's `model.builtin` is (a cached build takes 0.0 min: re-measure only).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from pydantic import ValidationError
from results_table import publish  # benchmarks/ is on sys.path when a script runs

from components.demo.builtin import builtin_base_model
from components.demo.seed_pretraining import SeedPretraining
from components.tasks.arithmetic import ArithmeticConfig, ArithmeticTask

ROOT = Path(__file__).resolve().parents[1]


def accuracy_by_digits(model_dir: Path, samples: int, temperature: float, eval_size: int) -> dict[str, dict]:
    """{digits: {"greedy": share, "pass@k": share, "hinted": share, "n": questions}} on the demo's eval split
    (1-5 digits); `hinted`: greedy with the answer shown as a hint, as rationalization asks."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    task = ArithmeticTask(ArithmeticConfig(min_digits=1, max_digits=5, eval_size=eval_size))
    by_group: dict[str, list] = {}
    for ex in task.load("eval"):
        by_group.setdefault(ex.group, []).append(ex)
    torch.manual_seed(0)
    out = {}
    for group in sorted(by_group, key=int):
        exs = by_group[group]
        budget = 60 + 40 * int(group)

        def answers_to(hint: bool, exs: list = exs, budget: int = budget, **sampling) -> list[str | None]:
            enc = tok([task.question(e, hint=hint, direct=False) for e in exs], return_tensors="pt", padding=True,
                      add_special_tokens=False)
            with torch.no_grad():
                ids = model.generate(**enc, max_new_tokens=budget, pad_token_id=tok.pad_token_id, **sampling)
            texts = tok.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            return [task.extract_answer(t, direct=False) for t in texts]

        g = answers_to(False, do_sample=False)
        s = answers_to(False, do_sample=True, temperature=temperature, top_k=0, num_return_sequences=samples)
        h = answers_to(True, do_sample=False)
        answers = [e.answer for e in exs]
        out[group] = {
            "n": len(exs),
            "greedy": sum(g[i] == a for i, a in enumerate(answers)) / len(exs),
            "pass@k": sum(a in s[i * samples:(i + 1) * samples] for i, a in enumerate(answers)) / len(exs),
            "hinted": sum(h[i] == a for i, a in enumerate(answers)) / len(exs),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path, help="a SeedPretraining recipe (JSON)")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "runs" / "probes", help="where builds are cached")
    parser.add_argument("--samples", type=int, default=8, help="k of pass@k (temperature --temperature)")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--eval-size", type=int, default=200)
    parser.add_argument("--append", type=Path, help="add the result section to this file")
    args = parser.parse_args()
    if not args.recipe.is_file():
        parser.error(f"no recipe file at {args.recipe}: give a SeedPretraining JSON, e.g. benchmarks/probes/*.json")
    try:
        recipe = SeedPretraining.model_validate_json(args.recipe.read_text())
    except ValidationError as e:
        parser.error(f"{args.recipe} is not a valid base-model recipe:\n{e}")
    started = time.monotonic()
    model_dir = builtin_base_model(recipe, args.cache_dir)
    build_minutes = (time.monotonic() - started) / 60
    acc = accuracy_by_digits(model_dir, args.samples, args.temperature, args.eval_size)
    steps = sum(s.steps for s in recipe.stages)
    where = args.recipe.resolve()
    shown = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
    rows = [f"## {args.recipe.stem}", "",
            f"`.venv/bin/python benchmarks/probe_base_model.py {shown}` on "
            f"{platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}; "
            f"{steps} pre-training steps, built in {build_minutes:.1f} min; "
            f"held-out: the demo's eval split, {args.eval_size} sums.", "",
            f"| digits | sums | greedy | pass@{args.samples} (T {args.temperature}) | greedy, shown the answer |",
            "|---|---|---|---|---|"]
    rows += [f"| {d} | {r['n']} | {r['greedy']:.0%} | {r['pass@k']:.0%} | {r['hinted']:.0%} |"
             for d, r in acc.items()]
    publish("\n".join(rows) + "\n", args.append)


if __name__ == "__main__":
    main()
