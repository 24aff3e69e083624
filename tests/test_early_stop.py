from components.early_stop import should_continue
from components.rows import IterationRecord


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
