"""The STaR steps (generate, rationalize, build the fine-tuning set) as plain functions. The model is replaced
by an oracle that can only answer when the prompt carries the hint: that isolates the steps' own logic."""

import json
from pathlib import Path

import pytest

from components import generate as generate_mod
from components.artifacts import ATTEMPTS, EXAMPLES, FINETUNE, SET_STATS
from components.finetune_set import build_finetune_set, select_kept
from components.rationalize import rationalize
from components.rows import Attempt, Example, TrainExample, read_rows, write_rows
from components.tasks.arithmetic import ArithmeticTask, make_example, scratchpad
from pipelines.config import RunConfig


class HintOracle:
    """Answers with the right scratchpad only when the question carries a hint; wrong otherwise."""

    calls: list[tuple[str, list[str]]] = []

    def __init__(self, model, tok, batch_size: int = 8) -> None:
        pass

    def generate(self, prefix, questions, sampling, stop, label=""):
        HintOracle.calls.append((prefix, list(questions)))
        out = []
        for q in questions:
            a, _, b = q.split("\n")[1].partition(" + ")
            x, y = int(a.replace(" ", "")), int(b.replace(" ", ""))
            out.append([scratchpad(x, y) if "Hint:" in q else scratchpad(x, y + 1)] * sampling.num_samples)
        return out


@pytest.fixture
def oracle(monkeypatch):
    HintOracle.calls = []
    monkeypatch.setattr("components.backends.load_generator", lambda *a, **k: HintOracle(None, None))
    return HintOracle


def _setup(tmp: Path, n: int = 6) -> tuple[Path, Path]:
    train = tmp / "train"
    write_rows(train / EXAMPLES, [make_example(10 + i, 20 + i, f"q{i}") for i in range(n)])
    gen = tmp / "gen"
    # generation solved q0 and q1 only
    attempts = [
        Attempt(id=f"q{i}", group="2", source="generation", prompt="p", completion="c", prediction="0",
                correct=i < 2)
        for i in range(n)
    ]
    write_rows(gen / ATTEMPTS, attempts)
    return train, gen


def _cfg(**rat) -> str:
    return RunConfig.model_validate(
        {"rationalization": rat, "task": {"name": "arithmetic", "few_shot_digits": [2, 3]}}
    ).to_json()


def test_rationalized_examples_are_saved_without_the_hint(oracle, tmp_path: Path) -> None:
    train, gen = _setup(tmp_path)
    out = tmp_path / "rat"
    stats = rationalize(_cfg(), 1, str(train), str(gen), "base", "policy", str(out))
    assert stats == {"failed": 4, "rationalized": 4, "solved": 4}
    (prefix, asked), = oracle.calls
    assert all("Hint: " in q for q in asked)  # the model saw the hint (final answer only) ...
    assert "Hint: " in prefix  # ... and the hint few-shot prompt
    task = ArithmeticTask()
    rows = read_rows(out / ATTEMPTS, Attempt)
    assert {r.id for r in rows} == {"q2", "q3", "q4", "q5"}
    for r in rows:
        assert r.correct and r.source == "rationalization"
        assert "Hint" not in r.prompt  # ... but the saved prompt is hint-free
        ex = next(e for e in read_rows(train / EXAMPLES, Example) if e.id == r.id)
        assert r.prompt == task.question(ex, hint=False, direct=False)


def test_p_show_hint_save_keeps_the_hint_when_asked(oracle, tmp_path: Path) -> None:
    train, gen = _setup(tmp_path)
    rationalize(_cfg(p_show_hint_save=1.0), 1, str(train), str(gen), "b", "p", str(tmp_path / "rat"))
    assert all("Hint: " in r.prompt for r in read_rows(tmp_path / "rat" / ATTEMPTS, Attempt))


def test_p_rationalization_zero_disables_rationalization(oracle, tmp_path: Path) -> None:
    train, gen = _setup(tmp_path)
    stats = rationalize(_cfg(p_rationalization=0.0), 1, str(train), str(gen), "b", "p", str(tmp_path / "rat"))
    assert stats["rationalized"] == 0 and oracle.calls == []
    assert read_rows(tmp_path / "rat" / ATTEMPTS, Attempt) == []


def test_p_rationalization_samples_a_share_of_the_failures(oracle, tmp_path: Path) -> None:
    train, gen = _setup(tmp_path, n=202)
    stats = rationalize(_cfg(p_rationalization=0.5), 1, str(train), str(gen), "b", "p", str(tmp_path / "rat"))
    assert 60 < stats["rationalized"] < 140


def test_generation_filters_by_the_answer_check(oracle, tmp_path: Path) -> None:
    train, _ = _setup(tmp_path)
    out = tmp_path / "gen2"
    stats = generate_mod.generate_rationales(_cfg(), 1, str(train), "b", "p", str(out))
    assert stats["solved"] == 0  # the oracle is wrong without a hint
    rows = read_rows(out / ATTEMPTS, Attempt)
    assert len(rows) == 6 and not any(r.correct for r in rows)
    assert all(r.prediction is not None for r in rows)


def test_finetune_set_deduplicates_caps_and_counts(tmp_path: Path) -> None:
    train, gen = _setup(tmp_path)
    rat = tmp_path / "rat"
    write_rows(rat / ATTEMPTS, [
        Attempt(id="q2", group="2", source="rationalization", prompt="p2", completion="r", prediction="1",
                correct=True),
        Attempt(id="q3", group="2", source="rationalization", prompt="p3", completion="r", prediction="0",
                correct=False),
    ])
    out = tmp_path / "set"
    stats = build_finetune_set(_cfg(), str(train), [str(gen)], [str(rat)], str(out))
    assert (stats.solved_by_generation, stats.solved_by_rationalization, stats.train_examples) == (2, 1, 3)
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
        d = tmp_path / f"gen{shard}"
        generate_mod.generate_rationales(_cfg(), 1, str(train), "b", "p", str(d), shard=shard, num_shards=3)
        dirs.append(str(d))
    ids = [a.id for d in dirs for a in read_rows(Path(d) / ATTEMPTS, Attempt)]
    assert sorted(ids) == sorted(f"q{i}" for i in range(7))  # every question exactly once
    rats = []
    for shard in range(3):
        r = tmp_path / f"rat{shard}"
        rationalize(_cfg(), 1, str(train), dirs[shard], "b", "p", str(r), shard=shard, num_shards=3)
        rats.append(str(r))
    stats = build_finetune_set(_cfg(), str(train), dirs, rats, str(tmp_path / "set"))
    assert stats.solved_by_rationalization == 7 and stats.train_examples == 7


def test_a_generation_shard_run_twice_writes_the_same_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Idempotent shards: a shard retried after preemption (or re-run by a resumed run) samples exactly what
    the first attempt sampled, with the real hf backend and temperature sampling."""
    train, _ = _setup(tmp_path, n=10)
    cfg = RunConfig.model_validate({
        "task": {"name": "arithmetic", "few_shot_digits": [2]},
        "generation": {"num_samples": 3, "temperature": 1.0, "max_new_tokens": 12, "batch_size": 4},
        "model": {"base": "builtin:tiny-untrained"},
    }).to_json()
    runs = []
    for attempt in range(2):
        out = tmp_path / f"attempt-{attempt}"
        generate_mod.generate_rationales(cfg, 2, str(train), str(tiny_model_dir), str(tiny_model_dir), str(out),
                                         shard=1, num_shards=2)
        runs.append((out / ATTEMPTS).read_bytes())
        assert not [p for p in out.iterdir() if p.name != ATTEMPTS]  # no temporary file left beside the rows
    rows = read_rows(tmp_path / "attempt-0" / ATTEMPTS, Attempt)
    assert runs[0] == runs[1] and len(rows) == 5 * 3
    assert len({r.completion for r in rows}) > 1  # it did sample


def test_generation_works_a_chunk_at_a_time(oracle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many questions are generated, scored and written a chunk at a time (flat memory), losing none."""
    monkeypatch.setattr(generate_mod, "CHUNK_QUESTIONS", 4)
    train, _ = _setup(tmp_path, n=10)
    stats = generate_mod.generate_rationales(_cfg(), 1, str(train), "b", "p", str(tmp_path / "gen"))
    assert [len(q) for _, q in oracle.calls] == [4, 4, 2]
    rows = read_rows(tmp_path / "gen" / ATTEMPTS, Attempt)
    assert [a.id for a in rows] == [f"q{i}" for i in range(10)] and stats["questions"] == 10
    assert stats["solved"] == 0  # the oracle needs the hint
