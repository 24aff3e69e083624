"""Scores of a set of answers: pure functions of predictions and gold answers.

- accuracy: the share of questions answered correctly;
- maj@k: accuracy of the majority vote over k samples per question (self-consistency, Wang et al. 2022);
- pass@k: the unbiased estimate of "at least one of k samples is correct" from n >= k samples of which c are
  correct, 1 - C(n-c, k) / C(n, k) (Chen et al. 2021);
- MAP@3: mean average precision at 3 over ranked letters, as in the Kaggle LLM Science Exam: a question scores
  1/rank of the first correct letter among its first three, and a letter repeated later counts once;
- accuracy by group: accuracy per class of question.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


def _same(a: str, b: str) -> bool:
    return a == b


def accuracy(correct: Sequence[bool]) -> float:
    if not correct:
        raise ValueError("accuracy of no questions")
    return sum(bool(c) for c in correct) / len(correct)


def majority_vote(predictions: Sequence[T | None]) -> T | None:
    """The most frequent prediction that is not None; ties go to the one seen first. None when all are None."""
    counts = Counter(p for p in predictions if p is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(p for p in predictions if p is not None and counts[p] == best)


def maj_at_k(
    samples: Sequence[Sequence[str | None]],
    golds: Sequence[str],
    is_correct: Callable[[str, str], bool] = _same,
) -> float:
    """Accuracy of the majority vote of each question's samples."""
    if len(samples) != len(golds):
        raise ValueError(f"{len(samples)} sample lists for {len(golds)} gold answers")
    votes = [majority_vote(s) for s in samples]
    return accuracy([v is not None and is_correct(v, g) for v, g in zip(votes, golds, strict=True)])


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one question with n samples, c of them correct (numerically stable product form)."""
    if not 0 <= c <= n:
        raise ValueError(f"{c} correct samples out of {n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs at least {k} samples per question (got {n})")
    if n - c < k:
        return 1.0
    p_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        p_all_wrong *= 1.0 - k / i
    return 1.0 - p_all_wrong


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float:
    """pass@k averaged over questions given as (samples, correct samples)."""
    if not counts:
        raise ValueError("pass@k of no questions")
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)


def average_precision_at_3(ranking: Sequence[str], gold: str) -> float:
    """1/rank of the gold letter among the first three ranked letters (0 when it is not there)."""
    for rank, letter in enumerate(ranking[:3], 1):
        if letter == gold:
            return 1.0 / rank
    return 0.0


def map_at_3(rankings: Sequence[Sequence[str]], golds: Sequence[str]) -> float:
    if len(rankings) != len(golds):
        raise ValueError(f"{len(rankings)} rankings for {len(golds)} gold answers")
    if not rankings:
        raise ValueError("MAP@3 of no questions")
    return sum(average_precision_at_3(r, g) for r, g in zip(rankings, golds, strict=True)) / len(rankings)


def group_order(group: str) -> tuple[float, str]:
    """Groups that start with a number sort by it ("2 steps" before "10 steps"), the others by name after them."""
    m = re.match(r"\d+", group)
    return (int(m.group(0)) if m else math.inf, group)


def accuracy_by_group(groups: Sequence[str], correct: Sequence[bool]) -> dict[str, float]:
    """Accuracy per group, in `group_order`."""
    if len(groups) != len(correct):
        raise ValueError(f"{len(groups)} groups for {len(correct)} answers")
    total: dict[str, int] = {}
    right: dict[str, int] = {}
    for g, c in zip(groups, correct, strict=True):
        total[g] = total.get(g, 0) + 1
        right[g] = right.get(g, 0) + int(bool(c))
    return {g: right[g] / total[g] for g in sorted(total, key=group_order)}


def vote_ranking(predictions: Sequence[str | None], k: int = 3) -> list[str]:
    """Letters ranked by how many samples chose them (ties: the one seen first), at most k."""
    counts = Counter(p for p in predictions if p is not None)
    first = {p: i for i, p in reversed(list(enumerate(predictions))) if p is not None}
    return sorted(counts, key=lambda p: (-counts[p], first[p]))[:k]
