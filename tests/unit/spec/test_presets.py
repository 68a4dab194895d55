"""Gradient checkpointing costs a third more compute, so the plan turns it on only where the
memory estimate says the job does not fit without it, shows the choice and its price, and the
launched job records the chosen offer's decision."""

from __future__ import annotations

from gateway.facade.launch import _with_settings
from gateway.facade.plan import plan
from gateway.spec import JobSpec

BASE = "meta-llama/Llama-3.1-8B-Instruct"
KEY = "training.gradient_checkpointing"


def _local(seq_len: int, **training):
    spec = JobSpec.from_dict(
        {
            "base_model": BASE,
            "method": "qlora",
            "training": {"max_seq_len": seq_len, "batch_size": 1, **training},
        }
    )
    p = plan(spec, examples=2000, avg_tokens=1500, hardware="rtx3090-24gb")
    offer = next(o for o in p.offers if o.provider == "local" and o.kind == "local")
    return p, offer


def test_off_where_the_job_fits_without_it():
    p, offer = _local(2048)
    assert offer.feasible and offer.settings == {KEY: False}
    (line,) = [a for a in offer.assumptions if "checkpointing" in a]
    assert line.startswith("gradient checkpointing off: the job fits without it")
    assert "on would add 33% time" in line
    spec, origin = _with_settings(p.spec, p.origin, offer)
    assert spec.training.gradient_checkpointing is False
    assert origin[KEY] == "plan:off, fits without it"
    assert p.spec.training.gradient_checkpointing is None  # the plan itself stays undecided


def test_on_where_only_checkpointing_makes_it_fit():
    p, on = _local(4096)
    _, off = _local(4096, gradient_checkpointing=False)
    assert on.feasible and on.settings == {KEY: True}
    assert not off.feasible and "needs ~" in off.reason  # without it, it really does not fit
    assert on.train_hours.likely > off.train_hours.likely  # and the time it costs is priced
    spec, origin = _with_settings(p.spec, p.origin, on)
    assert spec.training.gradient_checkpointing is True and origin[KEY] == "plan:on, needed to fit"


def test_the_users_choice_is_kept():
    p, offer = _local(2048, gradient_checkpointing=True)
    assert offer.settings == {} and p.origin[KEY] == "job"
    assert not [a for a in offer.assumptions if a.startswith("gradient checkpointing")]
