"""Job lifecycle pieces: state mapping, retry hints, redaction, cancel, quotes over budget."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from gateway.errors import JobError, PlanError
from gateway.jobs import Job, normalize_state
from gateway.journal import Journal
from gateway.launch import launch
from gateway.retry import backoff_s, describe, retry_after_s, retryable
from gateway.spec import JobSpec
from tests.fakes.openai_api import OpenAIFake
from tests.fakes.together_api import TogetherFake
from tests.hosted_helpers import SECRET, job_file

pytest.importorskip("openai")
pytest.importorskip("together")


class _StatusError(Exception):
    def __init__(self, code, headers=None, body=None):
        self.status_code = code
        self.response = httpx.Response(code, headers=headers or {})
        self.body = body


def test_unknown_states_map_to_the_nearest_with_a_warning():
    known = {"running": "running"}
    assert normalize_state("running", known) == ("running", None)
    for raw, expected in [
        ("CANCEL_REQUESTED_BY_ADMIN", "cancelled"),
        ("user_error", "failed"),
        ("COMPLETED_WITH_WARNINGS", "succeeded"),
        ("waiting_in_queue", "queued"),
        ("brand-new-state", "running"),
        (None, "running"),
    ]:
        state, warning = normalize_state(raw, known)
        assert state == expected and "unknown provider state" in warning


def test_retry_after_forms_and_what_is_retried():
    assert retry_after_s(_StatusError(429, {"retry-after-ms": "250"})) == 0.25
    assert retry_after_s(_StatusError(429, {"retry-after": "3"})) == 3.0
    date = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3 < retry_after_s(_StatusError(503, {"retry-after": date})) <= 5
    assert backoff_s(1, _StatusError(429, {"retry-after": "2"})) == 2.0
    assert backoff_s(3) == 1.0
    assert retryable(_StatusError(429)) and retryable(_StatusError(503))
    assert not retryable(_StatusError(400)) and not retryable(_StatusError(401))
    assert retryable(httpx.ReadTimeout("slow")) and retryable(ConnectionResetError())


def test_errors_never_carry_a_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    exc = _StatusError(401, body={"error": {"message": f"bad key {SECRET}"}})
    text = describe(exc)
    assert SECRET not in text and "HTTP 401" in text and "***" in text


def test_unknown_remote_state_is_journaled_not_fatal(monkeypatch, tmp_path):
    with OpenAIFake() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        job = launch(JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini")), backend="openai")
        remote = next(iter(fake.jobs.values()))
        remote["status"] = "rebalancing"  # not in the SDK's enum; the fake keeps it
        original = fake._advance
        fake._advance = lambda j: None
        rec = job.status()
        assert rec.state == "running"
        assert any("unknown provider state 'rebalancing'" in e.message for e in job.events())
        fake._advance = original
        remote["status"] = "running"
        assert job.wait(interval=0).state == "succeeded"


def test_cancel_and_no_artifact_before_success(monkeypatch, tmp_path):
    with TogetherFake() as fake:
        monkeypatch.setenv("TOGETHER_BASE_URL", fake.base_url)
        monkeypatch.setenv("TOGETHER_API_KEY", SECRET)
        job = launch(
            JobSpec.from_yaml(job_file(tmp_path, "meta-llama/Llama-3.1-8B-Instruct")),
            backend="together",
        )
        with pytest.raises(JobError, match="only a succeeded job"):
            job.artifact()
        rec = job.cancel()
        assert rec.state == "cancelled" and rec.finished_at
        assert next(iter(fake.jobs.values()))["status"] == "cancelled"
        assert Job(job.id).cancel().state == "cancelled"  # idempotent


def test_provider_quote_over_max_usd_creates_nothing(monkeypatch, tmp_path):
    with TogetherFake() as fake:
        monkeypatch.setenv("TOGETHER_BASE_URL", fake.base_url)
        monkeypatch.setenv("TOGETHER_API_KEY", SECRET)
        spec = JobSpec.from_yaml(job_file(tmp_path, "meta-llama/Llama-3.1-8B-Instruct"))
        # tunegate's own estimate fits, but Together's quote does not
        fake_quote = 5.0
        import tests.fakes.together_api as tapi

        monkeypatch.setattr(tapi, "PRICE_PER_TOKEN_NANO", int(fake_quote * 1e9))
        spec = spec.with_overrides({"constraints": {"max_usd": 1.0}})
        with pytest.raises(PlanError, match="over max_usd"):
            launch(spec, backend="together")
        assert not fake.jobs
        (rec,) = Journal().jobs()
        assert rec.state == "cancelled" and rec.estimate["provider_quote"]["usd"] > 1.0


def test_declined_confirmation_creates_nothing(monkeypatch, tmp_path):
    with OpenAIFake() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        spec = JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini"))
        with pytest.raises(JobError, match="not confirmed"):
            launch(spec, backend="openai", confirm=lambda rec, quote: False)
        assert not fake.jobs and fake.files  # uploaded (free), never created (billed)
