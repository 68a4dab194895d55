"""Which arm answers: sticky per user, the stated share within binomial tolerance, and a
larger share only ever moves users to the candidate."""

from __future__ import annotations

from gateway.journal.experiments import Experiment
from gateway.serve.split import arm_of, position, subject


def _exp(share: float) -> Experiment:
    return Experiment("exp-1", "voice", "dep-a", "dep-b", share, "running", {}, None, 0, 0, None)


def test_subject_is_user_then_key_then_address():
    assert subject("ana", "key-1", "127.0.0.1") == "user:ana"
    assert subject(None, "key-1", "127.0.0.1") == "key:key-1"
    assert subject("", None, "127.0.0.1") == "addr:127.0.0.1"
    assert subject(42, None, None) == "addr:unknown"


def test_the_share_holds_and_users_stay_put():
    users = [f"user:{i}" for i in range(20_000)]
    ten = [arm_of(_exp(0.10), u) for u in users]
    n = ten.count("candidate")
    assert abs(n - 2_000) < 4 * (20_000 * 0.1 * 0.9) ** 0.5  # within 4 standard deviations
    assert ten == [arm_of(_exp(0.10), u) for u in users]  # sticky
    thirty = [arm_of(_exp(0.30), u) for u in users]
    assert all(b == "candidate" for a, b in zip(ten, thirty, strict=True) if a == "candidate")
    # another experiment shuffles users afresh: the same 10% are not always the guinea pigs
    assert position("exp-1", "user:7") != position("exp-2", "user:7")
