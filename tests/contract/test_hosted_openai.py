"""OpenAI jobs end to end: the official `openai` SDK against a local fake of its REST API."""

from __future__ import annotations

import pytest

from gateway.facade.launch import launch
from gateway.spec import JobSpec
from tests.fakes.openai_api import OpenAIFake
from tests.support.job_files import job_file


@pytest.fixture
def fake(monkeypatch):
    pytest.importorskip("openai")
    with OpenAIFake() as server:
        server.env(monkeypatch)
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


def test_large_files_go_through_the_uploads_api(fake, tmp_path, monkeypatch):
    from providers.openai import OpenAI

    monkeypatch.setattr(OpenAI, "single_upload_limit", 100)  # bytes: every file is "large"
    job = launch(JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini")), backend="openai")
    (upload,) = fake.uploads.values()
    assert upload["status"] == "completed" and upload["parts"]
    assert job.record.remote["files"]["training_file"] == upload["file"]["id"]
    assert not [r for r in fake.server.requests if r.path == "/v1/files"]
    assert job.wait(interval=0).state == "succeeded"


def test_ctrl_c_stops_waiting_not_the_job(fake, tmp_path, monkeypatch, capsys):
    import gateway.facade.waiting

    job = launch(JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini")), backend="openai")

    def interrupt(_seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(gateway.facade.waiting.time, "sleep", interrupt)
    rec = job.wait(progress=True, interval=1)
    assert not rec.terminal
    err = capsys.readouterr().err
    assert "keeps running" in err and f"tunegate logs {job.id} --follow" in err
    (remote,) = fake.jobs.values()
    assert remote["status"] != "cancelled"


def test_train_cli_shows_estimate_and_asks(fake, tmp_path):
    from click.testing import CliRunner

    from cli.main import main

    path = job_file(tmp_path, "gpt-4o-mini")
    res = CliRunner().invoke(main, ["train", str(path), "--backend", "openai"], input="n\n")
    assert res.exit_code == 1 and "tunegate estimates $" in res.output
    assert "not confirmed; nothing was created" in res.output and not fake.jobs
    res = CliRunner().invoke(
        main, ["train", str(path), "--backend", "openai", "--max-usd", "0.0001", "--yes"]
    )
    assert res.exit_code == 1 and "max_usd" in res.output and not fake.jobs
