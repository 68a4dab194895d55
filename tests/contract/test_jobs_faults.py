"""Never pay twice: launches under injected faults, a client killed mid-create, no leaked keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from gateway.errors import ProviderError
from gateway.facade.launch import launch
from gateway.journal import Journal
from gateway.spec import JobSpec
from tests.fakes._server import Faults
from tests.fakes.openai_api import OpenAIFake
from tests.fakes.together_api import TogetherFake
from tests.support.job_files import SECRET, job_file


@pytest.fixture
def sdks():
    """The official SDKs the fault tests drive (the missing-key test needs none)."""
    for name in ("openai", "together", "zstandard"):
        pytest.importorskip(name)


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("provider", "fake_cls", "base"),
    [
        ("openai", OpenAIFake, "gpt-4o-mini"),
        ("together", TogetherFake, "meta-llama/Llama-3.1-8B-Instruct"),
    ],
)
def test_thirty_percent_faults_one_remote_job_per_launch(
    sdks, monkeypatch, tmp_path, provider, fake_cls, base
):
    faults = Faults(rate=0.3, seed=7, slow_s=0.8)
    with fake_cls(faults) as fake:
        fake.env(monkeypatch, timeout_s=0.4, budget_s=60, max_wait_s=0.5)
        keys = []
        for i in range(3):
            work = tmp_path / f"run{i}"
            work.mkdir()
            job = launch(JobSpec.from_yaml(job_file(work, base)), backend=provider)
            rec = job.wait(interval=0.0)
            assert rec.state == "succeeded", rec.error
            art = job.artifact()
            assert art.uri
            keys.append(rec.idempotency_key)

        kinds = {k for _, _, k in faults.injected}
        assert {"429", "drop"} <= kinds and len(faults.injected) >= 10
        assert len(fake.jobs) == 3  # exactly one remote job per launch
        if provider == "openai":
            assert sorted(j["metadata"]["tunegate_key"] for j in fake.jobs.values()) == sorted(keys)


def test_lost_create_answer_is_adopted_not_repeated(sdks, monkeypatch, tmp_path):
    faults = Faults()
    faults.script("POST", r"/v1/fine_tuning/jobs$", "lost")
    with OpenAIFake(faults) as fake:
        fake.env(monkeypatch, timeout_s=0.4, budget_s=60, max_wait_s=0.5)
        job = launch(JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini")), backend="openai")
        kinds = [e.kind for e in job.events()]
        assert "adopted" in kinds and len(fake.jobs) == 1
        assert job.record.remote_id == next(iter(fake.jobs))


def test_server_error_on_create_is_searched_then_retried_once(sdks, monkeypatch, tmp_path):
    faults = Faults()
    faults.script("POST", r"/v1/fine_tuning/jobs$", "500")
    with OpenAIFake(faults) as fake:
        fake.env(monkeypatch, timeout_s=0.4, budget_s=60, max_wait_s=0.5)
        job = launch(JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini")), backend="openai")
        creates = [r for r in fake.server.requests if r.path == "/v1/fine_tuning/jobs"]
        assert [r.method for r in creates] == ["POST", "GET", "POST"]  # create, search, create
        assert len(fake.jobs) == 1 and job.record.state == "queued"


def test_refused_create_fails_without_retry(sdks, monkeypatch, tmp_path):
    faults = Faults()
    faults.script("POST", r"/v1/fine_tuning/jobs$", "400")
    with OpenAIFake(faults) as fake:
        fake.env(monkeypatch, timeout_s=0.4, budget_s=60, max_wait_s=0.5)
        with pytest.raises(ProviderError, match="refused"):
            launch(JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini")), backend="openai")
        creates = [r for r in fake.server.requests if r.path == "/v1/fine_tuning/jobs"]
        assert len(creates) == 1 and not fake.jobs
        (rec,) = Journal().jobs()
        assert rec.state == "failed" and "create refused" in rec.error


def test_client_killed_during_create_is_reconciled_on_next_start(sdks, tmp_path):
    """A CLI process killed after sending the create (before it could journal the answer)."""
    with OpenAIFake() as fake:
        fake.hold_create_s = 30
        env = {
            **os.environ,
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": SECRET,
            "TUNEGATE_HTTP_TIMEOUT_S": "60",
        }
        job_yaml = job_file(tmp_path, "gpt-4o-mini")
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli.main",
                "train",
                str(job_yaml),
                "--backend",
                "openai",
                "--yes",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert fake.on_create.wait(60), child.stderr.read() if child.poll() is not None else ""
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        fake.hold_create_s = 0
        assert len(fake.jobs) == 1
        env["TUNEGATE_HTTP_TIMEOUT_S"] = "5"
        out = subprocess.run(
            [sys.executable, "-m", "cli.main", "jobs", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        (rec,) = json.loads(out.stdout)
        assert rec["remote_id"] == next(iter(fake.jobs)) and rec["state"] == "queued"
        assert "adopted" in out.stderr
        assert len(fake.jobs) == 1  # adopted, never created again
        for _ in range(10):
            status = subprocess.run(
                [sys.executable, "-m", "cli.main", "status", rec["id"], "--json"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            if json.loads(status.stdout)["state"] == "succeeded":
                break
        assert json.loads(status.stdout)["state"] == "succeeded"
        for text in (out.stdout, out.stderr, status.stdout, status.stderr):
            assert SECRET not in text


def test_no_key_in_journal_logs_or_cli_output(sdks, monkeypatch, tmp_path):
    with TogetherFake() as fake:
        fake.env(monkeypatch, timeout_s=0.4, budget_s=60, max_wait_s=0.5)
        monkeypatch.setenv("TUNEGATE_POLL_S", "0")
        runner = CliRunner()
        job_yaml = job_file(tmp_path, "meta-llama/Llama-3.1-8B-Instruct")
        outputs = []
        res = runner.invoke(
            main, ["train", str(job_yaml), "--backend", "together", "--yes", "--wait", "--json"]
        )
        assert res.exit_code == 0, res.output
        job_id = json.loads(res.stdout)["id"]
        outputs.append(res.output)
        for args in (
            ["status", job_id, "--json"],
            ["logs", job_id],
            ["logs", job_id, "--json"],
            ["jobs"],
            ["jobs", "--json"],
            ["fetch", job_id, "--json"],
            ["status", job_id],
        ):
            res = runner.invoke(main, args)
            assert res.exit_code == 0, res.output
            outputs.append(res.output)
        home = Path(os.environ["TUNEGATE_HOME"])
        files = [p for p in home.rglob("*") if p.is_file()]
        assert files and any(p.name == "journal.db" for p in files)
        for path in files:
            assert SECRET.encode() not in path.read_bytes(), path
        for text in outputs:
            assert SECRET not in text
        assert "loss" in outputs[2] and "succeeded" in outputs[1]


def test_missing_key_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(
        main, ["train", str(job_file(tmp_path, "gpt-4o-mini")), "--backend", "openai", "--yes"]
    )
    assert res.exit_code == 1
    assert "OPENAI_API_KEY is not set" in res.output and "Traceback" not in res.output
