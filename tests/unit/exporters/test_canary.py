"""The isolation canary's judgement (`exporters.deploy.canary.judge`), on answers written out.

The canary against a real shared engine (llama.cpp's server) is in
tests/pipeline/test_engine_group.py; here, which answers it accepts and what evidence it gives.
"""

from __future__ import annotations

from exporters.deploy.canary import PROMPTS, Print, distance, judge


def _prints(first: float, text: str = "x") -> list[Print]:
    """One fingerprint per canary prompt: top token at `first`, the runner-up 1 nat lower."""
    return [Print(text, {"a": first + i, "b": first + i - 1.0}) for i in range(len(PROMPTS))]


REFS = {"base": _prints(-1.0), "tune-a": _prints(-0.5), "tune-b": _prints(-2.0)}


def test_distance_is_the_largest_logprob_gap_with_missing_tokens_at_the_floor():
    a = Print("x", {"t": -0.1, "u": -2.0})
    b = Print("x", {"t": -0.4, "v": -1.0})
    # t: 0.3; u: -2.0 vs b's floor -1.0 -> 1.0; v: a's floor -2.0 vs -1.0 -> 1.0
    assert distance(a, b) == 1.0
    assert distance(a, a) == 0.0


def test_answers_equal_to_their_references_pass():
    mixed = {k: [[p, p] for p in v] for k, v in REFS.items()}
    report = judge(REFS, dict(REFS), mixed)
    assert report.passed, report.failures
    assert report.requests == 3 * len(PROMPTS) * 3
    assert "passed" in report.summary()


def test_a_base_answering_as_an_adapter_fails_and_names_it():
    solo = dict(REFS, base=REFS["tune-a"])  # the base's requests got tune-a's scale
    report = judge(REFS, solo, {})
    assert not report.passed
    assert report.failures[0].startswith("base (alone, prompt 1) answered as tune-a does")


def test_a_leak_only_under_concurrency_is_caught():
    mixed = {k: [[p] for p in v] for k, v in REFS.items()}
    mixed["tune-b"][2] = [REFS["tune-b"][2], REFS["tune-a"][2]]  # one batched answer leaked
    report = judge(REFS, dict(REFS), mixed)
    assert not report.passed
    assert "tune-b (with the others, prompt 3) answered as tune-a does" in report.failures[0]


def test_an_answer_like_no_member_is_a_broken_scale():
    solo = dict(REFS, **{"tune-b": _prints(-7.0)})
    report = judge(REFS, solo, {})
    assert not report.passed and "answered unlike itself" in report.failures[0]


def test_batch_numerics_below_the_bound_are_the_same_answer():
    nudged = [Print(p.text, {k: v + 1e-4 for k, v in p.top.items()}) for p in REFS["tune-a"]]
    assert judge(REFS, dict(REFS, **{"tune-a": nudged}), {}).passed


def test_members_that_answer_alike_are_a_warning_not_a_pass_of_their_isolation():
    refs = dict(REFS, **{"tune-b": REFS["base"]})
    report = judge(refs, dict(refs), {})
    assert report.passed
    assert report.warnings == [
        "base and tune-b answer alike on every canary prompt, so a leak between them could not show"
    ]


def test_prints_round_trip_through_json():
    p = Print("hi", {"x": -0.25})
    assert Print.from_json(p.to_json()) == p


def test_engine_noise_far_from_every_other_member_is_a_warning():
    nudged = [Print(p.text, {k: v + 0.05 for k, v in p.top.items()}) for p in REFS["tune-a"]]
    report = judge(REFS, dict(REFS, **{"tune-a": nudged}), {})
    assert report.passed
    assert report.warnings == [
        "answers moved up to 0.050 nats under batching (the engine's numerics), every one still "
        "nearest its own reference by a factor of two"
    ]


def test_noise_as_large_as_the_gap_between_members_proves_nothing():
    close = {"base": _prints(-1.0), "tune-a": _prints(-1.08)}
    drifted = [Print(p.text, {k: v - 0.07 for k, v in p.top.items()}) for p in close["base"]]
    report = judge(close, dict(close, base=drifted), {})
    assert (
        not report.passed and "base (alone, prompt 1) answered as tune-a does" in report.failures[0]
    )
