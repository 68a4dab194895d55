"""An OpenAI deployment is the job's fine-tuned model: the official SDK against the fake."""

from __future__ import annotations

import pytest

from gateway.facade.deploy import chat, deploy


def test_openai_deployment_is_the_jobs_model(monkeypatch, tmp_path):
    pytest.importorskip("openai")
    from gateway.facade.launch import launch
    from gateway.spec import JobSpec
    from tests.fakes.openai_api import OpenAIFake
    from tests.support.job_files import job_file

    with OpenAIFake() as fake:
        fake.env(monkeypatch)
        job = launch(JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini")), backend="openai")
        assert job.wait(interval=0).state == "succeeded"
        dep = deploy(job.id, "openai")
        assert dep.endpoint.startswith("ft:gpt-4o-mini") and dep.state == "live"
        reply = chat(dep.id, "hello")
        assert reply.text == f"[{dep.endpoint}] olleh" and reply.finish_reason == "stop"
