"""Provider cutoffs are data: past OpenAI's last day for new jobs the planner refuses it with the
date and the cheapest open alternative; a retirement inside the serving horizon is a note."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.errors import SpecError
from gateway.facade.plan import plan
from gateway.spec import JobSpec
from tests.support.job_files import job_file


def _openai(result):
    return next(o for o in result.offers if o.provider == "openai")


def test_before_the_cutoff_openai_plans_with_a_retirement_note(tmp_path):
    spec = JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini"))
    offer = _openai(plan(spec, today=date(2026, 12, 20), env={"OPENAI_API_KEY": "x"}))
    assert not any("no new fine-tuning jobs" in r for r in offer.reasons)
    # the 30-day serving horizon from 2026-12-20 reaches past the 2027-01-13 retirement
    assert any("stop answering after 2027-01-13" in n for n in offer.notes)
    early = _openai(plan(spec, today=date(2026, 6, 1), env={"OPENAI_API_KEY": "x"}))
    assert not any("stop answering" in n for n in early.notes)


def test_after_the_cutoff_openai_is_refused_with_the_date_and_an_alternative(tmp_path):
    spec = JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini"))
    result = plan(spec, today=date(2027, 1, 6), env={"OPENAI_API_KEY": "x"})
    offer = _openai(result)
    assert not offer.feasible
    (why,) = [r for r in offer.reasons if "no new fine-tuning jobs" in r]
    assert "from 2027-01-06" in why and "deprecations" in why
    assert "cheapest open alternative:" in why
    assert any(base in why for base in ("Llama-3.1-8B-Instruct", "Qwen/Qwen3-8B"))
    assert "`tunegate plan --base " in why
    # the day before, it still plans
    assert not any(
        "no new" in r
        for r in _openai(plan(spec, today=date(2027, 1, 5), env={"OPENAI_API_KEY": "x"})).reasons
    )


def test_the_date_can_be_frozen_from_the_environment(tmp_path, monkeypatch):
    spec = JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini"))
    monkeypatch.setenv("TUNEGATE_TODAY", "2027-02-01")
    assert not _openai(plan(spec)).feasible
    monkeypatch.setenv("TUNEGATE_TODAY", "next tuesday")
    with pytest.raises(SpecError, match="not a date"):
        plan(spec)
