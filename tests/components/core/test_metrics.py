import itertools
from math import comb

import pytest

from components.core import metrics


def test_accuracy() -> None:
    assert metrics.accuracy([True, False, True, True]) == 0.75
    with pytest.raises(ValueError):
        metrics.accuracy([])


@pytest.mark.parametrize(
    "predictions, expected",
    [
        (["A", "B", "B"], "B"),
        (["A", "B", "A", "B"], "A"),  # a tie goes to the answer seen first
        ([None, None, "7"], "7"),  # unreadable samples do not vote
        ([None, None], None),
        ([], None),
    ],
)
def test_majority_vote(predictions: list, expected: str | None) -> None:
    assert metrics.majority_vote(predictions) == expected


def test_maj_at_k_votes_per_question() -> None:
    samples = [["18", "18", "17"], ["3", "4", "4"], [None, None, "5"], [None, None, None]]
    assert metrics.maj_at_k(samples, ["18", "3", "5", "1"]) == 0.5
    numeric = lambda a, b: float(a) == float(b)  # noqa: E731
    assert metrics.maj_at_k([["18.0", "18.0", "2"]], ["18"], numeric) == 1.0


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """The share of k-subsets of n samples (c of them correct) holding at least one correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n, c, k", [(5, 0, 1), (5, 1, 1), (5, 2, 3), (10, 3, 5), (8, 8, 4), (6, 1, 6), (7, 5, 3)])
def test_pass_at_k_is_the_unbiased_estimate(n: int, c: int, k: int) -> None:
    expected = 1 - comb(n - c, k) / comb(n, k)
    assert metrics.pass_at_k(n, c, k) == pytest.approx(expected)
    assert metrics.pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k))


def test_pass_at_1_is_the_share_of_correct_samples_and_pass_at_k_needs_k_samples() -> None:
    assert metrics.pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert metrics.mean_pass_at_k([(4, 1), (4, 4), (4, 0)], 1) == pytest.approx((0.25 + 1 + 0) / 3)
    with pytest.raises(ValueError, match="at least 5 samples"):
        metrics.pass_at_k(4, 1, 5)
    with pytest.raises(ValueError):
        metrics.pass_at_k(4, 5, 1)


@pytest.mark.parametrize(
    "ranking, gold, expected",
    [
        # the Kaggle LLM Science Exam examples: all three score 1.0 when the answer is A
        (["A", "B", "C", "D", "E"], "A", 1.0),
        (["A", "A", "A", "A", "A"], "A", 1.0),
        (["A", "B", "A", "C", "A"], "A", 1.0),
        (["B", "A", "C"], "A", 1 / 2),
        (["C", "B", "A"], "A", 1 / 3),
        (["B", "B", "A"], "A", 1 / 3),  # a repeated wrong letter still takes its rank
        (["B", "A", "A"], "A", 1 / 2),  # a correct letter counts once, at its first rank
        (["B", "C", "D", "A"], "A", 0.0),  # only the first three ranks count
        (["A"], "A", 1.0),
        ([], "A", 0.0),
    ],
)
def test_average_precision_at_3(ranking: list[str], gold: str, expected: float) -> None:
    assert metrics.average_precision_at_3(ranking, gold) == pytest.approx(expected)


def test_map_at_3_averages_over_questions() -> None:
    rankings = [["A", "B", "C"], ["B", "A", "C"], ["C", "B", "A"], ["D", "E", "B"]]
    golds = ["A", "A", "A", "A"]
    assert metrics.map_at_3(rankings, golds) == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    with pytest.raises(ValueError):
        metrics.map_at_3([["A"]], ["A", "B"])


def test_accuracy_by_group_orders_numbered_groups_by_number() -> None:
    groups = ["10 steps", "2 steps", "2 steps", "all", "8+ steps"]
    correct = [True, True, False, True, False]
    assert metrics.accuracy_by_group(groups, correct) == {"2 steps": 0.5, "8+ steps": 0.0, "10 steps": 1.0, "all": 1.0}
    assert list(metrics.accuracy_by_group(groups, correct)) == ["2 steps", "8+ steps", "10 steps", "all"]


def test_vote_ranking() -> None:
    assert metrics.vote_ranking(["B", "A", "B", None, "C", "A", "D"]) == ["B", "A", "C"]
    assert metrics.vote_ranking([None]) == []
