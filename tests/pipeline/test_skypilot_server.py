"""A rented job's lifecycle against a real local SkyPilot API server (0.14, .venv-sky).

The server runs its managed-jobs controller in-process (`consolidation_mode`). AWS is its
cloud, with moto's server standing in for S3 (the job's bucket), STS (the credential check)
and EC2 (availability zones); the fixture catalog prices an L4. Nothing can be provisioned, so
a launched job waits PENDING, which is what the lifecycle needs:

- `tunegate train --on aws` journals, uploads the job's folder to the bucket and launches a
  managed job whose name carries the idempotency key; `status` maps PENDING to queued;
  `cancel` ends it, and the journal agrees with SkyPilot's CANCELLED;
- a launch whose process dies after SkyPilot took the job but before the journal heard of it
  is adopted by name on the next start (`tunegate jobs`): one job on SkyPilot's queue;
- RunPod and Vast (enabled by their key files; SkyPilot cannot mount a bucket there) launch on
  the synced route, their storage secret in nothing tunegate writes or prints. Provider APIs
  are refused at once by a loopback proxy (HTTPS_PROXY), so nothing is rented.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

pytest.importorskip("moto")
pytest.importorskip("boto3")

from cli.main import main
from gateway.journal import Journal
from providers.runners import sky_jobs as _sky_jobs
from tests.support.job_files import chats, write_jsonl
from tests.support.polling import until
from tests.support.sky_server import BUCKET, SKY, skip_without_skypilot

skip_without_skypilot()

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(sky_server):
    return sky_server


@pytest.fixture
def rented_env(server, monkeypatch, tmp_path):
    for key, value in server.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TUNEGATE_SKYPILOT_PYTHON", str(SKY / "python"))
    monkeypatch.setenv("TUNEGATE_SKYPILOT_BUCKET", f"s3://{BUCKET}/jobs")
    write_jsonl(tmp_path / "train.jsonl", chats(16))
    job = tmp_path / "job.yaml"
    job.write_text(
        yaml.safe_dump(
            {
                "name": "rented",
                "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
                "train": "train.jsonl",
                "training": {"epochs": 1},
            }
        )
    )
    return job


def _queue(name: str) -> list[dict]:
    return _sky_jobs.bridge("queue", {"name": name}).get("jobs") or []


def _s3_keys(prefix: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_launch_status_and_cancel_through_a_real_skypilot_server(rented_env):
    runner = CliRunner()
    out = runner.invoke(
        main, ["train", str(rented_env), "--backend", "local", "--on", "aws", "--yes", "--json"]
    )
    assert out.exit_code == 0, out.output
    job = json.loads(out.stdout)
    assert job["remote_id"].startswith("sky:") and job["state"] == "queued"
    with Journal() as journal:
        rec = journal.get(job["id"])
    assert rec.offer["kind"] == "rented" and rec.spec["resources"]["cloud"] == "aws"
    # the job's folder is in the bucket before the machine exists
    keys = _s3_keys(f"jobs/{rec.id}/")
    assert f"jobs/{rec.id}/spec.json" in keys and f"jobs/{rec.id}/train.jsonl" in keys
    (sky_job,) = _queue(_sky_jobs.job_name(rec))
    assert (
        sky_job["status"] in ("PENDING", "STARTING") and f"sky:{sky_job['job_id']}" == rec.remote_id
    )
    status = json.loads(runner.invoke(main, ["status", rec.id, "--json"]).stdout)
    assert status["state"] == "queued" and status["remote"]["runner"] == "skypilot"
    assert status["remote"]["bucket_jobdir"] == f"s3://{BUCKET}/jobs/{rec.id}"
    assert runner.invoke(main, ["cancel", rec.id]).exit_code == 0

    def cancelled():
        state = json.loads(runner.invoke(main, ["status", rec.id, "--json"]).stdout)["state"]
        return state == "cancelled"

    assert until(cancelled, 120, 3), _queue(_sky_jobs.job_name(rec))
    assert [j["status"] for j in _queue(_sky_jobs.job_name(rec))] == ["CANCELLED"]


def test_a_launch_cut_off_before_the_journal_heard_is_adopted(rented_env, monkeypatch):
    """The process dies after SkyPilot took the job and before the journal recorded its id."""
    from gateway.facade.launch import launch
    from gateway.spec import JobSpec

    real_update = Journal.update

    def dies_at_the_journal_write(self, job_id, **fields):
        if str(fields.get("remote_id") or "").startswith("sky:"):
            raise KeyboardInterrupt  # the kill lands here: SkyPilot has the job, we do not
        return real_update(self, job_id, **fields)

    monkeypatch.setattr(Journal, "update", dies_at_the_journal_write)
    with pytest.raises(KeyboardInterrupt):
        launch(JobSpec.from_yaml(rented_env), backend="local", on="aws")
    monkeypatch.setattr(Journal, "update", real_update)
    with Journal() as journal:
        (rec,) = [r for r in journal.jobs() if r.remote_id is None and r.state != "cancelled"]
    out = CliRunner().invoke(main, ["jobs", "--json"])
    assert out.exit_code == 0, out.output
    assert "adopted" in out.stderr
    listed = {j["id"]: j for j in json.loads(out.stdout)}
    sky_jobs = _queue(_sky_jobs.job_name(rec))
    assert len(sky_jobs) == 1  # adopted, never launched again
    assert listed[rec.id]["remote_id"] == f"sky:{sky_jobs[0]['job_id']}"
    assert listed[rec.id]["state"] == "queued"
    CliRunner().invoke(main, ["cancel", rec.id])  # nothing left pending on the server


@pytest.mark.parametrize("cloud", ["runpod", "vast"])
def test_a_cloud_that_cannot_mount_launches_with_its_folder_synced(rented_env, monkeypatch, cloud):
    """`--on runpod` / `--on vast`: the job is launched on the synced route (no bucket mount; bucket_sync runs
    the worker, tests/pipeline/test_bucket_sync.py). The storage secret it carries is in
    nothing tunegate writes or prints."""
    secret = "tg-secret-2f9c81d7e4b0"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)  # moto takes any
    runner = CliRunner()
    out = runner.invoke(
        main, ["train", str(rented_env), "--backend", "local", "--on", cloud, "--yes", "--json"]
    )
    assert out.exit_code == 0, out.output
    job = json.loads(out.stdout)
    with Journal() as journal:
        rec = journal.get(job["id"])
    assert rec.spec["resources"]["cloud"] == cloud and job["remote_id"].startswith("sky:")
    keys = _s3_keys(f"jobs/{rec.id}/")
    assert f"jobs/{rec.id}/spec.json" in keys and f"jobs/{rec.id}/train.jsonl" in keys
    (sky_job,) = _queue(_sky_jobs.job_name(rec))
    assert f"sky:{sky_job['job_id']}" == rec.remote_id
    assert secret not in out.output
    home = Path(os.environ["TUNEGATE_HOME"])
    written = [p for p in home.rglob("*") if p.is_file()]
    assert written and not [p for p in written if secret.encode() in p.read_bytes()]
    assert runner.invoke(main, ["cancel", rec.id]).exit_code == 0

    def ended():
        state = json.loads(runner.invoke(main, ["status", rec.id, "--json"]).stdout)["state"]
        return state in ("cancelled", "failed")

    assert until(ended, 120, 3), _queue(_sky_jobs.job_name(rec))


def test_doctor_asks_skypilot_and_the_plan_prices_from_its_catalogs(rented_env):
    out = CliRunner().invoke(main, ["doctor", "--clouds", "--json"])
    assert out.exit_code == 0, out.output
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"] if c["area"] == "rented"}
    assert checks["skypilot"]["ok"] and checks["bucket"]["ok"]
    assert checks["clouds"]["ok"], checks["clouds"]
    detail = checks["clouds"]["detail"]
    assert "aws" in detail and "synced by its worker: " in detail and "vast" in detail
    plan = json.loads(CliRunner().invoke(main, ["plan", str(rented_env), "--json"]).stdout)
    l4s = [o for o in plan["offers"] if o["kind"] == "rented" and o["hardware"] == "l4-24gb"]
    # the fixture catalogs' prices, not tunegate's own table: Vast's L4 is the cheapest, and
    # launchable (its folder synced), the offer pinned to it
    l4 = l4s[0]
    assert l4["cloud"] == "vast" and any(
        "1x-L4-8-32768" in n and "$0.35/h" in n for n in l4["notes"]
    )
    assert l4["settings"]["resources.cloud"] == "vast"
    assert not any("not launchable" in n for n in l4["needs"])
    # a job held to AWS: SkyPilot's g6.xlarge there
    job = yaml.safe_load(rented_env.read_text())
    on_aws = rented_env.with_name("on-aws.yaml")
    on_aws.write_text(yaml.safe_dump({**job, "resources": {"cloud": "aws"}}))
    plan = json.loads(CliRunner().invoke(main, ["plan", str(on_aws), "--json"]).stdout)
    l4 = next(o for o in plan["offers"] if o["kind"] == "rented" and o["hardware"] == "l4-24gb")
    assert l4["cloud"] == "aws" and any("g6.xlarge" in n and "$0.81/h" in n for n in l4["notes"])
