"""Pure job-lifecycle pieces: state mapping, retry hints, redaction (no SDK needed)."""

from __future__ import annotations

import email.utils
import time

import httpx

from gateway.facade.jobs import normalize_state
from gateway.util.retry import backoff_s, describe, retry_after_s, retryable
from tests.support.job_files import SECRET


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
