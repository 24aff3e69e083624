from components.core.artifact_files import HISTORY
from components.core.rows import IterationRecord, write_rows
from components.gate import gate, should_continue, stopped_after
from components.settings.steps import GateSettings


def _history(*accuracies: float) -> list[IterationRecord]:
    return [IterationRecord(iteration=i, eval_accuracy=a, eval_questions=10) for i, a in enumerate(accuracies)]


def test_stops_when_accuracy_has_not_improved_for_patience_iterations() -> None:
    assert should_continue(_history(0.3, 0.4), patience=1)
    assert not should_continue(_history(0.3, 0.4, 0.4), patience=1)  # a tie is no improvement
    assert should_continue(_history(0.3, 0.4, 0.35), patience=2)
    assert not should_continue(_history(0.3, 0.4, 0.35, 0.39), patience=2)
    assert should_continue(_history(0.3, 0.4, 0.35, 0.45), patience=2)


def test_without_patience_it_never_stops() -> None:
    assert should_continue(_history(0.5, 0.1, 0.1, 0.1), patience=None)


def test_stopped_after_names_the_last_iteration_that_ran() -> None:
    assert stopped_after(_history(0.3, 0.4, 0.35, 0.39), patience=2) == 3
    assert stopped_after(_history(0.3, 0.4, 0.4), patience=1) == 2
    assert stopped_after(_history(0.3, 0.4, 0.35, 0.45), patience=2) is None
    assert stopped_after(_history(0.5, 0.1, 0.1), patience=None) is None


def test_the_gate_reads_the_history_it_is_given(tmp_path) -> None:
    settings = GateSettings(patience=1)
    write_rows(tmp_path / HISTORY, _history(0.3, 0.4))
    assert gate(settings, 2, str(tmp_path))
    write_rows(tmp_path / HISTORY, _history(0.3, 0.4, 0.4))
    assert not gate(settings, 3, str(tmp_path))
    write_rows(tmp_path / HISTORY, [])
    assert gate(settings, 1, str(tmp_path))


def test_an_iteration_after_an_early_stop_loads_nothing_and_passes_the_history_on(tmp_path, monkeypatch) -> None:
    """The steps of a stopped iteration (the gate answered False) run but do nothing: no model is loaded (the
    model folders here do not even exist), training writes only a marker, and evaluation hands the history on
    unchanged, so the report and every later iteration see the run as it was when it stopped."""
    import json

    from components.build_finetune_set import build_finetune_set
    from components.core.artifact_files import (
        ATTEMPTS,
        EVAL_ATTEMPTS,
        EXAMPLES,
        FINETUNE,
        RATIONALIZATIONS,
        SKIPPED,
    )
    from components.core.rows import Attempt, TrainExample, read_rows
    from components.evaluate import evaluate
    from components.generate import generate_shard
    from components.tasks.arithmetic import make_example
    from components.train import train
    from pipelines.config import RunConfig

    def no_model(*a, **k):
        raise AssertionError("a stopped iteration loaded a model")

    monkeypatch.setattr("components.generation.load_generator", no_model)
    monkeypatch.setattr("components.models.loading.load_model", no_model)
    config = RunConfig.model_validate({"evaluation": {"patience": 1}})
    write_rows(tmp_path / "train" / EXAMPLES, [make_example(1, 2, "q0")])
    history = _history(0.3, 0.4, 0.4)
    write_rows(tmp_path / "history" / HISTORY, history)
    assert not gate(config.gate_settings(), 3, str(tmp_path / "history"))
    missing = str(tmp_path / "no-such-model")

    shard = tmp_path / "shard"
    stats = generate_shard(config.generate_settings(), 3, str(tmp_path / "train"), missing, missing, str(shard),
                           active=False)
    assert stats["questions"] == stats["solved"] == stats["rationalized"] == 0
    assert read_rows(shard / ATTEMPTS, Attempt) == read_rows(shard / RATIONALIZATIONS, Attempt) == []
    kept = build_finetune_set(config.finetune_set_settings(), str(tmp_path / "train"), [str(shard)],
                              str(tmp_path / "set"))
    assert kept.train_examples == 0 and read_rows(tmp_path / "set" / FINETUNE, TrainExample) == []

    model = tmp_path / "model"
    assert train(config.train_settings(), 3, str(tmp_path / "set"), missing, missing, str(model), active=False) is None
    assert [p.name for p in model.iterdir()] == [SKIPPED]
    assert json.loads((model / SKIPPED).read_text()) == {"iteration": 3, "reason": "early stop"}

    out = tmp_path / "history-out"
    assert evaluate(config.evaluate_settings(), 3, str(tmp_path / "eval"), missing, str(model),
                    str(tmp_path / "history"), str(out), active=False) is None
    assert read_rows(out / HISTORY, IterationRecord) == history
    assert read_rows(out / EVAL_ATTEMPTS, Attempt) == []
    assert not gate(config.gate_settings(), 4, str(out))  # every later iteration stays stopped
