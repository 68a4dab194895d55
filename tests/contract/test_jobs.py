"""Job lifecycle through the official SDKs against the fakes: unknown states, cancel, quotes
over budget, a declined confirmation."""

from __future__ import annotations

import pytest

from gateway.errors import JobError, PlanError
from gateway.facade.jobs import Job
from gateway.facade.launch import launch
from gateway.journal import Journal
from gateway.spec import JobSpec
from tests.fakes.openai_api import OpenAIFake
from tests.fakes.together_api import TogetherFake
from tests.support.job_files import SECRET, job_file


@pytest.fixture(autouse=True)
def _sdks():
    pytest.importorskip("openai")
    pytest.importorskip("together")


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
