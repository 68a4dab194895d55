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


def test_feedback_bodies():
    from gateway.serve.split import parse_feedback

    rid = "req-" + "a" * 32
    assert parse_feedback({"request_id": rid, "thumbs": "up"}) == (rid, 1.0)
    assert parse_feedback({"request_id": rid, "thumbs": "down"}) == (rid, 0.0)
    assert parse_feedback({"request_id": rid, "score": 0.25}) == (rid, 0.25)
    for bad in (None, [], {"request_id": "req-1", "score": 1}, {"request_id": rid, "score": 2},
                {"request_id": rid, "score": True}, {"request_id": rid}):  # fmt: skip
        assert parse_feedback(bad) is None


def test_auto_decides_only_on_clear_numbers():
    from gateway.evaluate.sequential import difference
    from gateway.facade.ab import Arm, Auto, Status, decide

    def now(inc_fail: int, cand_fail: int, inc_scores: list, cand_scores: list, n: int = 100):
        exp = _exp(0.5)
        exp = Experiment(**{**exp.to_json(), "settings": {"auto": Auto().__dict__}})
        arms = {
            "incumbent": Arm("incumbent", "dep-a", requests=n, failures=inc_fail),
            "candidate": Arm("candidate", "dep-b", requests=n, failures=cand_fail),
        }
        ok = [1.0] * (n - inc_fail) + [0.0] * inc_fail, [1.0] * (n - cand_fail) + [0.0] * cand_fail
        signals = {"success": difference(*ok)}
        if inc_scores:
            signals["feedback"] = difference(inc_scores, cand_scores)
        return Status(exp, arms, signals)

    assert decide(now(0, 0, [], [])) is None  # nothing to go on
    assert decide(now(0, 0, [0.0, 1.0] * 150, [1.0] * 300))[0] == "promoted"
    assert decide(now(0, 0, [1.0] * 300, [0.0, 1.0] * 150))[0] == "rolled_back"
    state, why = decide(now(1, 9, [], []))
    assert state == "rolled_back" and "9.0%" in why and "1.0%" in why
    assert decide(now(0, 9, [], [], n=20)) is None  # under min_requests
    no_auto = now(0, 9, [], [])
    no_auto.experiment = _exp(0.5)
    assert decide(no_auto) is None
