"""Always-valid intervals: on A/A traffic, a verdict read after every 20 requests declares a
false winner no more often than the nominal 5% (the fixed-sample interval, read the same way,
does far more often: the test can fail), and a real difference is found."""

from __future__ import annotations

import math
import random

from gateway.evaluate.sequential import compare, difference, from_sums, sequence

RUNS, PEEK_EVERY, MAX_N = 300, 20, 2000


def _peeking_false_wins(p: float, always_valid: bool, seed: int) -> float:
    rng = random.Random(seed)
    false = 0
    for _ in range(RUNS):
        sums = [[0, 0.0, 0.0], [0, 0.0, 0.0]]
        for step in range(1, MAX_N + 1):
            for arm in sums:
                x = 1.0 if rng.random() < p else 0.0
                arm[0] += 1
                arm[1] += x
                arm[2] += x * x
            if step % PEEK_EVERY:
                continue
            if always_valid:
                a, b = (from_sums(*arm, alpha=0.025) for arm in sums)
                verdict = compare(a, b).verdict
            else:  # the fixed-sample 95% interval, read at every peek
                (na, sa, _), (nb, sb, _) = sums
                ma, mb = sa / na, sb / nb
                se = math.sqrt(ma * (1 - ma) / na + mb * (1 - mb) / nb) or 1e-9
                verdict = "inconclusive" if abs(mb - ma) < 1.96 * se else "win"
            if verdict != "inconclusive":
                false += 1
                break
    return false / RUNS


def test_peeking_does_not_inflate_false_wins():
    for p, seed in ((0.5, 1), (0.1, 2)):
        assert _peeking_false_wins(p, always_valid=True, seed=seed) <= 0.05 + 0.03
    # the same peeking with a fixed-sample interval: several times the nominal rate
    assert _peeking_false_wins(0.5, always_valid=False, seed=3) > 0.15


def test_a_real_difference_is_found_and_the_interval_covers_it():
    rng = random.Random(7)
    incumbent = [1.0 if rng.random() < 0.55 else 0.0 for _ in range(3000)]
    candidate = [1.0 if rng.random() < 0.70 else 0.0 for _ in range(3000)]
    found = difference(incumbent, candidate)
    assert found.verdict == "candidate wins" and found.low < 15.0 < found.high
    assert difference(candidate, incumbent).verdict == "candidate loses"
    # a margin the interval does not clear is not a win
    assert difference(incumbent, candidate, margin=found.low + 1).verdict == "inconclusive"
    # few observations: wide, and a run of identical scores does not collapse it
    early = sequence([1.0] * 5)
    assert early.high - early.low > 0.5
    assert difference([], []).verdict == "inconclusive"
