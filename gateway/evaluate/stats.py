"""Statistics that do not overclaim (evaluation.md section 1.6): the paired delta of two runs
on the same examples, a paired bootstrap CI, McNemar's exact test on the discordant pairs, and
a verdict only when the interval excludes the threshold."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any

WARN_PTS, FAIL_PTS = 3.0, 10.0  # a drop of 3 points warns, 10 is catastrophic forgetting
BOOTSTRAP = 2000


@dataclass(frozen=True)
class Paired:
    n: int
    base: float  # mean score, in points (0-100)
    tuned: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float | None  # McNemar exact, for 0/1 scores
    verdict: str  # improved | ok | warn | fail | inconclusive

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact p for b pairs only the first got right and c only the second."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def bootstrap_ci(
    diffs: list[float], seed: int = 0, rounds: int = BOOTSTRAP, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of the mean of paired differences (seeded: reruns agree)."""
    if not diffs:
        return 0.0, 0.0
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(rounds))
    lo = means[int((1 - level) / 2 * rounds)]
    hi = means[min(rounds - 1, int((1 + level) / 2 * rounds))]
    return lo, hi


def verdict(low: float, high: float) -> str:
    """From the CI of tuned - base, in points."""
    if low > 0:
        return "improved"
    if high <= -FAIL_PTS:
        return "fail"
    if high <= -WARN_PTS:
        return "warn"
    if low > -WARN_PTS:
        return "ok"
    return "inconclusive"


def paired(base: list[float], tuned: list[float], seed: int = 0) -> Paired:
    if len(base) != len(tuned):
        raise ValueError("paired scores need the same examples")
    n = len(base)
    diffs = [(t - b) * 100 for b, t in zip(base, tuned, strict=True)]
    lo, hi = bootstrap_ci(diffs, seed)
    binary = all(s in (0.0, 1.0) for s in base + tuned)
    p = None
    if binary:
        only_base = sum(1 for b, t in zip(base, tuned, strict=True) if b > t)
        only_tuned = sum(1 for b, t in zip(base, tuned, strict=True) if t > b)
        p = mcnemar_exact(only_base, only_tuned)
    mean_b = 100 * sum(base) / n if n else 0.0
    mean_t = 100 * sum(tuned) / n if n else 0.0
    return Paired(n, mean_b, mean_t, mean_t - mean_b, lo, hi, p, verdict(lo, hi))
