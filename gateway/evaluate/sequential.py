"""Intervals that stay honest when someone looks every minute: asymptotic confidence
sequences (Waudby-Smith, Arnold, Wu, Ramdas and Howard, "Time-uniform central limit theory and
asymptotic confidence sequences", Annals of Statistics 2024, Theorem 2.2, the normal-mixture
boundary). A fixed-sample 95% interval checked after every request declares a false winner far
more often than 5% of the time; a confidence sequence holds at every sample size at once, so
an A/B verdict may be read at any moment and acted on (`tunegate ab`).

Each arm's mean gets a sequence at half the error rate; the difference of two independent arms
is bounded by their ends (a union bound: valid, a little conservative). Scores are in 0-1; the
variance estimate starts from a prior of 1/4 (the largest a 0-1 signal can have) weighted as
one observation, so a run of identical early scores cannot make the interval collapse.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

ALPHA = 0.05
TUNED_FOR_N = 100  # where the boundary is tightest (valid at every n): a verdict within minutes


@dataclass(frozen=True)
class Sequence:
    n: int
    mean: float
    low: float
    high: float


def rho2(alpha: float, n_star: int = TUNED_FOR_N) -> float:
    """The mixture's spread that makes the boundary tightest near `n_star` (WS et al. eq. 2.5)."""
    return (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / n_star


def radius(n: int, variance: float, alpha: float, n_star: int = TUNED_FOR_N) -> float:
    """Half-width of the asymptotic confidence sequence for a mean after n observations."""
    if n <= 0:
        return math.inf
    r2 = rho2(alpha, n_star)
    t = n * variance * r2
    return math.sqrt(2 * (t + 1) / (n * n * r2) * math.log(math.sqrt(t + 1) / alpha))


def sequence(values: list[float], alpha: float = ALPHA) -> Sequence:
    """The running mean of 0-1 `values` with its always-valid interval, clipped to 0-1."""
    return from_sums(len(values), sum(values), sum(v * v for v in values), alpha)


def from_sums(n: int, total: float, total_sq: float, alpha: float = ALPHA) -> Sequence:
    """`sequence` from running sums (n, sum, sum of squares): what a live counter keeps."""
    if n == 0:
        return Sequence(0, 0.0, 0.0, 1.0)
    mean = total / n
    squares = max(0.0, total_sq - n * mean * mean)
    variance = (squares + 0.25) / (n + 1)
    r = radius(n, variance, alpha)
    return Sequence(n, mean, max(0.0, mean - r), min(1.0, mean + r))


@dataclass(frozen=True)
class Difference:
    """Candidate minus incumbent on one signal, in points (0-100), always valid."""

    n_incumbent: int
    n_candidate: int
    incumbent: float
    candidate: float
    delta: float
    low: float
    high: float
    verdict: str  # candidate wins | candidate loses | inconclusive

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def difference(
    incumbent: list[float], candidate: list[float], margin: float = 0.0, alpha: float = ALPHA
) -> Difference:
    """The candidate's delta with an interval valid under continuous monitoring: a win only
    when the whole interval clears `margin` points, a loss when it is below -`margin`."""
    return compare(sequence(incumbent, alpha / 2), sequence(candidate, alpha / 2), margin)


def compare(a: Sequence, b: Sequence, margin: float = 0.0) -> Difference:
    """Two arms' sequences (each at half the error rate) as the candidate's difference."""
    low, high = (b.low - a.high) * 100, (b.high - a.low) * 100
    if low > margin:
        verdict = "candidate wins"
    elif high < -margin:
        verdict = "candidate loses"
    else:
        verdict = "inconclusive"
    return Difference(
        a.n, b.n, a.mean * 100, b.mean * 100, (b.mean - a.mean) * 100, low, high, verdict
    )
