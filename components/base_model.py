"""The demo's base model: a tiny model given a starting competence on the arithmetic task.

Real STaR starts from a pretrained checkpoint prompted with a few worked examples. Where no weights can be
downloaded, a short pre-training on a small seed set of scratchpad sums stands in for it. The seed set covers
the whole digit range thinly (short sums more often), so the base model is right often on short sums and
sometimes on long ones: that is what bootstrapping needs. The result is a normal `save_pretrained` folder.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from components.rows import Example, TrainExample
from components.tasks.arithmetic import ArithmeticTask, make_example, random_operand
from components.tiny_model import TinyModelConfig, build_model, build_tokenizer

RECIPE = "seed_pretraining.json"  # saved beside the weights: the recipe a built-in base model was made with


class SeedStage(BaseModel):
    """One stage of pre-training: a seed set of `seed_examples` sums (drawn with `seed`), `steps` optimizer
    steps, Adam restarted (with a fresh warm-up in the first chunk) every `restart_every` steps."""

    model_config = ConfigDict(extra="forbid")

    seed_examples: int = Field(ge=1)
    seed: int = 0
    steps: int = Field(ge=1)
    restart_every: int | None = Field(None, ge=1)


def _default_stages() -> list[SeedStage]:
    # The recipe the shipped checkpoint (components/assets/tiny-arithmetic) was built with.
    return [SeedStage(seed_examples=2000, seed=0, steps=750, restart_every=250),
            SeedStage(seed_examples=4000, seed=1, steps=2400, restart_every=400)]


class SeedPretraining(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig)
    #: Relative frequency of each digit count in the seed set (index 0 = 1 digit).
    digit_weights: list[float] = Field(default_factory=lambda: [8, 8, 4, 2, 1])
    examples_per_document: int = Field(1, ge=1)
    hint_share: float = Field(0.3, ge=0, le=1)
    learning_rate: float = 1e-3
    batch_size: int = 32
    stages: list[SeedStage] = Field(default_factory=_default_stages, min_length=1)


def seed_sums(cfg: SeedPretraining, stage: SeedStage) -> list[tuple[Example, bool]]:
    """The sums of a stage's seed set, each with whether its question shows the answer as a hint."""
    rng = random.Random(stage.seed)
    digits = list(range(1, len(cfg.digit_weights) + 1))
    sums = []
    for i in range(stage.seed_examples):
        d = rng.choices(digits, weights=cfg.digit_weights)[0]
        ex = make_example(random_operand(rng, d), random_operand(rng, d), f"seed-{i}")
        sums.append((ex, rng.random() < cfg.hint_share))
    return sums


def seed_documents(cfg: SeedPretraining, stage: SeedStage) -> list[TrainExample]:
    """Worked examples in the prompt's shape (several per document are joined by blank lines)."""
    task = ArithmeticTask()
    blocks = [task.question(ex, hint=hint, direct=False) + task.target(ex, direct=False)
              for ex, hint in seed_sums(cfg, stage)]
    k = cfg.examples_per_document
    return [
        TrainExample(id=f"doc-{i}", source="generation", prompt="", completion="\n\n".join(blocks[i : i + k]))
        for i in range(0, len(blocks), k)
    ]


def build_base_model(path: str | Path, cfg: SeedPretraining) -> Path:
    """Pre-train the tiny model on the seed set and save it (model + tokenizer) at `path`, atomically."""
    from components.finetune import fit  # torch: only when a model is built, not when the recipe is read

    path = Path(path)
    tok = build_tokenizer()
    model = build_model(cfg.tiny, tok)
    for n, stage in enumerate(cfg.stages, 1):
        docs = seed_documents(cfg, stage)
        chunk = stage.restart_every or stage.steps
        for c, start in enumerate(range(0, stage.steps, chunk)):
            with tempfile.TemporaryDirectory() as work:
                fit(
                    model, tok, docs, max_steps=min(chunk, stage.steps - start), output_dir=work,
                    learning_rate=cfg.learning_rate, batch_size=cfg.batch_size,
                    warmup_ratio=0.05 if c == 0 else 0.0, seed=c, label=f"pre-train base model · stage {n}",
                )
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / RECIPE).write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


if __name__ == "__main__":  # make base-model
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "components/assets/tiny-arithmetic")
    build_base_model(out, SeedPretraining())
    print(f"wrote {out}")
