"""OpenAI jobs end to end: the official `openai` SDK against a local fake of its REST API."""

from __future__ import annotations

import pytest

from gateway.jobs import launch
from gateway.spec import JobSpec
from tests.fakes.openai_api import OpenAIFake
from tests.hosted_helpers import SECRET, job_file

pytest.importorskip("openai")


@pytest.fixture
def fake(monkeypatch):
    with OpenAIFake() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        monkeypatch.setenv("TUNEGATE_HTTP_TIMEOUT_S", "0.5")
        monkeypatch.setenv("TUNEGATE_RETRY_BUDGET_S", "30")
        yield server


@pytest.mark.parametrize("objective", ["sft", "dpo"])
def test_launch_wait_artifact(fake, tmp_path, objective):
    spec = JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini", objective))
    job = launch(spec, backend="openai")
    rec = job.wait(interval=0.01)
    assert rec.state == "succeeded", rec.error
    art = job.artifact()
    assert art.kind == "hosted-model" and art.uri.startswith("ft:gpt-4o-mini-2024-07-18")
    (remote,) = fake.jobs.values()
    assert remote["method"]["type"] == ("dpo" if objective == "dpo" else "supervised")
    assert remote["metadata"]["tunegate_key"] == rec.idempotency_key
    assert rec.actual["billed_tokens"] == 12_345 and rec.actual["usd"] > 0
    assert job.progress()["loss"] == pytest.approx(0.5)
