"""The STaR steps (generate and rationalize a shard, build the fine-tuning set) as plain functions. The model is
replaced by an oracle that can only answer when the prompt carries the hint (or, for the questions it is told it
knows, without one): that isolates the steps' own logic."""

import json
from pathlib import Path

import pytest

from components import generate as generate_mod
from components.build_finetune_set import build_finetune_set, select_kept
from components.core.artifact_files import ATTEMPTS, EXAMPLES, FINETUNE, RATIONALIZATIONS, SET_STATS
from components.core.rows import Attempt, Example, TrainExample, read_rows, write_rows
from components.core.seeds import Stage, chunk_seed, evaluation_seed, generation_seed, training_seed
from components.generate import generate_shard
from components.settings.steps import GenerateSettings
from components.tasks.arithmetic import ArithmeticTask, make_example, scratchpad
from pipelines.config import RunConfig


class HintOracle:
    """Answers with the right scratchpad when the question carries a hint, or when its first number is one it
    `knows`; wrong otherwise."""

    calls: list[tuple[str, list[str]]] = []
    seeds: list[int | None] = []
    loads = 0
    knows: set[int] = set()

    def __init__(self, model, tok, batch_size: int = 8) -> None:
        HintOracle.loads += 1

    def generate(self, prefix, questions, sampling, stop, label=""):
        HintOracle.calls.append((prefix, list(questions)))
        HintOracle.seeds.append(sampling.seed)
        out = []
        for q in questions:
            a, _, b = q.split("\n")[1].partition(" + ")
            x, y = int(a.replace(" ", "")), int(b.replace(" ", ""))
            right = "Hint:" in q or x in HintOracle.knows
            out.append([scratchpad(x, y) if right else scratchpad(x, y + 1)] * sampling.num_samples)
        return out


@pytest.fixture
def oracle(monkeypatch):
    HintOracle.calls, HintOracle.seeds, HintOracle.loads, HintOracle.knows = [], [], 0, set()
    monkeypatch.setattr("components.generation.load_generator", lambda *a, **k: HintOracle(None, None))
    return HintOracle


def _setup(tmp: Path, n: int = 6) -> tuple[Path, Path]:
    """The training questions q0..q(n-1) (q_i is 10+i + 20+i), and a shard's generation attempts in which
    generation solved q0 and q1 only."""
    train = tmp / "train"
    write_rows(train / EXAMPLES, [make_example(10 + i, 20 + i, f"q{i}") for i in range(n)])
    gen = tmp / "gen"
    attempts = [
        Attempt(id=f"q{i}", group="2", source="generation", prompt="p", completion="c", prediction="0",
                correct=i < 2)
        for i in range(n)
    ]
    write_rows(gen / ATTEMPTS, attempts)
    return train, gen


def _config(**rat) -> RunConfig:
    return RunConfig.model_validate({"rationalization": rat, "task": {"name": "arithmetic", "few_shot_digits": [2, 3]}})


def _cfg(**rat) -> GenerateSettings:
    return _config(**rat).generate_settings()


def _shard(settings: GenerateSettings, train: Path, out: Path, **kw) -> dict[str, float]:
    return generate_shard(settings, kw.pop("iteration", 1), str(train), "base", "model", str(out), **kw)


def test_rationalized_examples_are_saved_without_the_hint(oracle, tmp_path: Path) -> None:
    train, _ = _setup(tmp_path)
    oracle.knows = {10, 11}  # generation solves q0 and q1
    out = tmp_path / "shard"
    stats = _shard(_cfg(), train, out)
    assert stats == {"questions": 6, "solved": 2, "solved_share": 2 / 6, "failed": 4, "rationalized": 4,
                     "rationalization_solved": 4}
    assert oracle.loads == 1  # generation and rationalization share one model
    (_, generated), (prefix, asked) = oracle.calls
    assert all("Hint: " not in q for q in generated) and len(generated) == 6
    assert len(asked) == 4  # only the questions generation failed are rationalized
    assert all("Hint: " in q for q in asked)  # the model saw the hint (final answer only) ...
    assert "Hint: " in prefix  # ... and the hint few-shot prompt
    task = ArithmeticTask()
    rows = read_rows(out / RATIONALIZATIONS, Attempt)
    assert {r.id for r in rows} == {"q2", "q3", "q4", "q5"}
    for r in rows:
        assert r.correct and r.source == "rationalization"
        assert "Hint" not in r.prompt  # ... but the saved prompt is hint-free
        ex = next(e for e in read_rows(train / EXAMPLES, Example) if e.id == r.id)
        assert r.prompt == task.question(ex, hint=False, direct=False)
    generation = read_rows(out / ATTEMPTS, Attempt)
    assert {a.id for a in generation if a.correct} == {"q0", "q1"}
    assert {a.source for a in generation} == {"generation"}


def test_p_show_hint_save_keeps_the_hint_when_asked(oracle, tmp_path: Path) -> None:
    train, _ = _setup(tmp_path)
    _shard(_cfg(p_show_hint_save=1.0), train, tmp_path / "rat")
    rows = read_rows(tmp_path / "rat" / RATIONALIZATIONS, Attempt)
    assert rows and all("Hint: " in r.prompt for r in rows)


@pytest.mark.parametrize("settings", [_cfg(p_rationalization=0.0), _config().generate_settings(rationalize=False)],
                         ids=["p_rationalization=0", "ablation"])
def test_p_rationalization_zero_disables_rationalization(oracle, tmp_path: Path, settings) -> None:
    train, _ = _setup(tmp_path)
    stats = _shard(settings, train, tmp_path / "rat")
    assert stats["rationalized"] == 0 and stats["failed"] == 6
    assert len(oracle.calls) == 1 and not any("Hint: " in q for q in oracle.calls[0][1])  # generation only
    assert read_rows(tmp_path / "rat" / RATIONALIZATIONS, Attempt) == []


def test_p_rationalization_samples_a_share_of_the_failures(oracle, tmp_path: Path) -> None:
    train, _ = _setup(tmp_path, n=202)
    stats = _shard(_cfg(p_rationalization=0.5), train, tmp_path / "rat")
    assert 60 < stats["rationalized"] < 140


def test_generation_filters_by_the_answer_check(oracle, tmp_path: Path) -> None:
    train, _ = _setup(tmp_path)
    out = tmp_path / "gen2"
    stats = _shard(_cfg(), train, out)
    assert stats["solved"] == 0  # the oracle is wrong without a hint
    rows = read_rows(out / ATTEMPTS, Attempt)
    assert len(rows) == 6 and not any(r.correct for r in rows)
    assert all(r.prediction is not None for r in rows)


def test_finetune_set_deduplicates_caps_and_counts(tmp_path: Path) -> None:
    train, gen = _setup(tmp_path)
    # the shard's rationalizations sit beside its generation attempts
    write_rows(gen / RATIONALIZATIONS, [
        Attempt(id="q2", group="2", source="rationalization", prompt="p2", completion="r", prediction="1",
                correct=True),
        Attempt(id="q3", group="2", source="rationalization", prompt="p3", completion="r", prediction="0",
                correct=False),
    ])
    out = tmp_path / "set"
    stats = build_finetune_set(_config().finetune_set_settings(), str(train), [str(gen)], str(out))
    assert (stats.solved_by_generation, stats.solved_by_rationalization, stats.train_examples) == (2, 1, 3)
    assert (stats.kept_generation, stats.kept_rationalization) == (2, 1)
    assert json.loads((out / SET_STATS).read_text())["train_questions"] == 6
    kept = read_rows(out / FINETUNE, TrainExample)
    assert sorted(k.id for k in kept) == ["q0", "q1", "q2"]

    dup = [Attempt(id="a", group="1", source="generation", sample=k, prompt="p", completion=c, prediction="1",
                   correct=True) for k, c in enumerate(["x  y", "x y", "z", "w"])]
    assert [k.completion for k in select_kept(dup, 5)] == ["x  y", "z", "w"]  # whitespace-only repeats dropped
    assert len(select_kept(dup, 2)) == 2  # cap per question


def test_shards_split_the_questions_and_merge_back(oracle, tmp_path: Path) -> None:
    train, _ = _setup(tmp_path, n=7)
    dirs = []
    for shard in range(3):
        d = tmp_path / f"shard{shard}"
        _shard(_cfg(), train, d, shard=shard, num_shards=3)
        dirs.append(str(d))
    ids = [a.id for d in dirs for a in read_rows(Path(d) / ATTEMPTS, Attempt)]
    assert sorted(ids) == sorted(f"q{i}" for i in range(7))  # every question exactly once
    for d in dirs:  # each shard rationalizes its own failures
        assert ({a.id for a in read_rows(Path(d) / RATIONALIZATIONS, Attempt)}
                == {a.id for a in read_rows(Path(d) / ATTEMPTS, Attempt)})
    stats = build_finetune_set(_config().finetune_set_settings(), str(train), dirs, str(tmp_path / "set"))
    assert stats.solved_by_rationalization == 7 and stats.train_examples == 7


def test_a_generation_shard_run_twice_writes_the_same_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Idempotent shards: a shard retried after preemption (or re-run by a resumed run) samples exactly what
    the first attempt sampled, with the real hf backend and temperature sampling."""
    train, _ = _setup(tmp_path, n=10)
    cfg = RunConfig.model_validate({
        "task": {"name": "arithmetic", "few_shot_digits": [2]},
        "generation": {"num_samples": 3, "temperature": 1.0, "max_new_tokens": 12, "batch_size": 4},
        "model": {"base": "builtin:tiny-untrained"},
    }).generate_settings()
    runs = []
    for attempt in range(2):
        out = tmp_path / f"attempt-{attempt}"
        generate_shard(cfg, 2, str(train), str(tiny_model_dir), str(tiny_model_dir), str(out), shard=1,
                       num_shards=2)
        runs.append(((out / ATTEMPTS).read_bytes(), (out / RATIONALIZATIONS).read_bytes()))
        # no temporary file left beside the rows
        assert sorted(p.name for p in out.iterdir()) == sorted([ATTEMPTS, RATIONALIZATIONS])
    rows = read_rows(tmp_path / "attempt-0" / ATTEMPTS, Attempt)
    assert runs[0] == runs[1] and len(rows) == 5 * 3
    assert len({r.completion for r in rows}) > 1  # it did sample
    assert read_rows(tmp_path / "attempt-0" / RATIONALIZATIONS, Attempt)  # and rationalized the failures


def test_generation_works_a_chunk_at_a_time(oracle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many questions are generated, scored and written a chunk at a time (flat memory), losing none."""
    monkeypatch.setattr(generate_mod, "CHUNK_QUESTIONS", 4)
    train, _ = _setup(tmp_path, n=10)
    stats = _shard(_cfg(p_rationalization=0.0), train, tmp_path / "gen")
    assert [len(q) for _, q in oracle.calls] == [4, 4, 2]
    rows = read_rows(tmp_path / "gen" / ATTEMPTS, Attempt)
    assert [a.id for a in rows] == [f"q{i}" for i in range(10)] and stats["questions"] == 10
    assert stats["solved"] == 0  # the oracle needs the hint
    # chunk k samples with its own seed, chunk 0 with the shard's
    shard_seed = generation_seed(0, 1, Stage.GENERATION, 0)
    assert oracle.seeds == [shard_seed, shard_seed + 1_000_003, shard_seed + 2_000_006]


def test_rationalization_draws_from_its_own_seeds_per_iteration_and_shard(oracle, tmp_path: Path) -> None:
    train, _ = _setup(tmp_path, n=8)
    _shard(_config(p_rationalization=1.0).model_copy(update={"seed": 5}).generate_settings(), train,
           tmp_path / "s", iteration=3, shard=1, num_shards=2)
    assert oracle.seeds == [generation_seed(5, 3, Stage.GENERATION, 1), generation_seed(5, 3, Stage.RATIONALIZATION, 1)]


def test_seeds_are_the_numbers_runs_always_drew() -> None:
    """The seed arithmetic moved to one module; a run with the same seed must draw exactly as before it did."""
    for seed, it, shard in [(0, 1, 0), (3, 2, 1), (7, 64, 1023)]:
        for stage in Stage:
            assert generation_seed(seed, it, stage, shard) == seed * 100_003 + it * 10 + int(stage) + shard * 7_919
        assert chunk_seed(generation_seed(seed, it, Stage.GENERATION, shard), 2) == (
            generation_seed(seed, it, Stage.GENERATION, shard) + 2 * 1_000_003)
        assert evaluation_seed(seed, it) == seed * 7 + it and training_seed(seed, it) == seed + it
    assert (Stage.GENERATION, Stage.RATIONALIZATION, Stage.RATIONALIZATION_CHOICE) == (0, 1, 2)
