"""The demo's base model: a tiny model given a starting competence on the arithmetic task.

Real STaR starts from a pretrained checkpoint prompted with a few worked examples. Where no weights can be
downloaded, a short pre-training on a small seed set of scratchpad sums stands in for it. The default seed set
covers the whole digit range (short sums more often), but shows every 4- and 5-digit sum with its answer as a
hint: the base model works short sums on its own and long sums only when it is shown the answer, as a few-shot
prompted model can often justify an answer it could not find. That is the gap STaR's rationalization closes,
and neither more training on the seed set nor STaR without rationalization does. The result is a normal
`save_pretrained` folder.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.core.rows import Example, TrainExample
from components.demo.tiny_model import TinyModelConfig, build_model, build_tokenizer
from components.tasks.arithmetic import ArithmeticTask, make_example, random_operand
from components.training.lr_schedule import LrSchedule

RECIPE = "seed_pretraining.json"  # saved beside the weights: the recipe a built-in base model was made with


class SeedStage(BaseModel):
    """One stage of pre-training: `seed_examples` new sums (drawn with `seed`), with `replay` also the sums of
    every earlier stage, for `steps` optimizer steps; Adam restarted (with a fresh warm-up in the first chunk)
    every `restart_every` steps. The learning rate (the recipe's unless set) is constant after warm-up, or
    decays to zero over each chunk (`lr_schedule` cosine/linear: an annealing stage)."""

    model_config = ConfigDict(extra="forbid")

    seed_examples: int = Field(ge=0)
    seed: int = 0
    replay: bool = False
    steps: int = Field(ge=1)
    restart_every: int | None = Field(None, ge=1)
    learning_rate: float | None = Field(None, gt=0)
    lr_schedule: LrSchedule = "constant"

    @model_validator(mode="after")
    def _has_sums(self) -> SeedStage:
        if self.seed_examples == 0 and not self.replay:
            raise ValueError("a seed stage needs seed_examples > 0 or replay: true (it has no sums to train on)")
        return self


def _default_stages() -> list[SeedStage]:
    # The recipe the shipped checkpoint (components/demo/assets/tiny-arithmetic) was built with.
    return [SeedStage(seed_examples=2000, seed=0, steps=750, restart_every=250),
            SeedStage(seed_examples=4000, seed=1, steps=2400, lr_schedule="cosine")]


class SeedPretraining(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig)
    #: Relative frequency of each digit count in the seed set (index 0 = 1 digit).
    digit_weights: list[float] = Field(default_factory=lambda: [8, 8, 4, 2, 1])
    examples_per_document: int = Field(1, ge=1)
    #: The loss falls on the whole document, questions included (how the shipped checkpoint was trained); false:
    #: on the scratchpad and answer only, as in the examples STaR keeps (a question's digits are random).
    loss_on_question: bool = True
    #: Share of seed sums whose question shows the answer as a hint (how the base model learns what a hint means,
    #: which rationalization relies on): one share for every digit count, or one per digit count (index 0 = 1
    #: digit), e.g. a model that has worked long sums only when shown their answer.
    hint_share: float | list[float] = Field(default_factory=lambda: [0.3, 0.3, 0.3, 1.0, 1.0])
    learning_rate: float = 1e-3
    batch_size: int = 32
    stages: list[SeedStage] = Field(default_factory=_default_stages, min_length=1)

    @model_validator(mode="after")
    def _hint_shares_per_digit_count(self) -> SeedPretraining:
        shares = self.hint_share if isinstance(self.hint_share, list) else [self.hint_share]
        if any(not 0 <= s <= 1 for s in shares):
            raise ValueError(f"hint_share must be between 0 and 1, got {self.hint_share}")
        if isinstance(self.hint_share, list) and len(self.hint_share) != len(self.digit_weights):
            raise ValueError(f"hint_share has {len(self.hint_share)} shares but digit_weights has "
                             f"{len(self.digit_weights)} digit counts: give one share per digit count, or one number")
        return self

    def hint_share_of(self, digits: int) -> float:
        """The share of `digits`-digit seed sums shown with their answer as a hint."""
        return self.hint_share[digits - 1] if isinstance(self.hint_share, list) else self.hint_share

    @model_validator(mode="after")
    def _one_example_without_question_loss(self) -> SeedPretraining:
        if not self.loss_on_question and self.examples_per_document != 1:
            raise ValueError("loss_on_question: false trains on (question, scratchpad) pairs: set "
                             "examples_per_document to 1")
        return self


def seed_sums(cfg: SeedPretraining, stage: SeedStage) -> list[tuple[Example, bool]]:
    """The sums of a stage's seed set, each with whether its question shows the answer as a hint."""
    rng = random.Random(stage.seed)
    digits = list(range(1, len(cfg.digit_weights) + 1))
    sums = []
    for i in range(stage.seed_examples):
        d = rng.choices(digits, weights=cfg.digit_weights)[0]
        ex = make_example(random_operand(rng, d), random_operand(rng, d), f"seed-{i}")
        sums.append((ex, rng.random() < cfg.hint_share_of(d)))
    return sums


def all_seed_sums(cfg: SeedPretraining) -> list[tuple[Example, bool]]:
    """Every sum the base model is pre-trained on: the new sums of all its stages."""
    return [s for stage in cfg.stages for s in seed_sums(cfg, stage)]


def stage_sums(cfg: SeedPretraining, n: int) -> list[tuple[Example, bool]]:
    """The sums stage `n` (0-based) trains on: its own, after those of the earlier stages when it replays them."""
    stage = cfg.stages[n]
    earlier = [s for prior in cfg.stages[:n] for s in seed_sums(cfg, prior)] if stage.replay else []
    return earlier + seed_sums(cfg, stage)


def seed_pair(ex: Example, hint: bool, idx: str) -> TrainExample:
    """A seed sum in the shape of the rows STaR trains on: its question (with the hint line when `hint`) as
    prompt, scratchpad and answer as completion."""
    task = ArithmeticTask()
    return TrainExample(id=idx, source="seed", prompt=task.question(ex, hint=hint, direct=False),
                        completion=task.target(ex, direct=False))


def seed_documents(cfg: SeedPretraining, n: int) -> list[TrainExample]:
    """Stage `n`'s worked examples in the prompt's shape (several per document are joined by blank lines), or
    without `loss_on_question` (question, scratchpad and answer) pairs."""
    pairs = [seed_pair(ex, hint, f"doc-{i}") for i, (ex, hint) in enumerate(stage_sums(cfg, n))]
    if not cfg.loss_on_question:
        return pairs
    blocks = [p.prompt + p.completion for p in pairs]
    k = cfg.examples_per_document
    return [
        TrainExample(id=f"doc-{i}", source="seed", prompt="", completion="\n\n".join(blocks[i : i + k]))
        for i in range(0, len(blocks), k)
    ]


def build_base_model(path: str | Path, cfg: SeedPretraining) -> Path:
    """Pre-train the tiny model on the seed set and save it (model + tokenizer) at `path`, atomically."""
    from components.training.fit import fit  # torch: only when a model is built, not when the recipe is read

    path = Path(path)
    tok = build_tokenizer(cfg.tiny.digit_tokens)
    model = build_model(cfg.tiny, tok)
    for n, stage in enumerate(cfg.stages):
        docs = seed_documents(cfg, n)
        chunk = stage.restart_every or stage.steps
        for c, start in enumerate(range(0, stage.steps, chunk)):
            with tempfile.TemporaryDirectory() as work:
                fit(
                    model, tok, docs, max_steps=min(chunk, stage.steps - start), output_dir=work,
                    learning_rate=stage.learning_rate or cfg.learning_rate, batch_size=cfg.batch_size,
                    warmup_ratio=0.05 if c == 0 else 0.0, lr_schedule=stage.lr_schedule, seed=c,
                    label=f"pre-train base model · stage {n + 1}",
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
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "components/demo/assets/tiny-arithmetic")
    build_base_model(out, SeedPretraining())
    print(f"wrote {out}")
