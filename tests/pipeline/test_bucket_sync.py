"""A rented machine that cannot mount the bucket (RunPod, Vast): `bucket_sync` runs the real TRL
worker on a tiny model against S3 (moto's server on loopback). The first machine is killed
outright mid-training (a preemption: nothing final is pushed); a second, empty machine pulls
the inputs and the newest complete checkpoint from the bucket and carries on from it, and the
adapter and final status end up in the bucket where `tunegate` reads them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("moto")
pytest.importorskip("boto3")
pytest.importorskip("trl")

from providers.jobdir import COMPLETE
from providers.runners.bucket import JobBucket
from providers.runners.bucket_sync import KEEP
from tests.support.job_files import chats, local_job
from tests.support.polling import until

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "tg-synced"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3(monkeypatch):
    """moto's S3 server on loopback, with the job bucket; the environment points boto3 at it."""
    port = _port()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import boto3

        def made() -> bool:
            try:
                boto3.client("s3").create_bucket(Bucket=BUCKET)
                return True
            except Exception:
                return False

        assert until(made, 30, 0.3), "moto's server did not start"
        yield
    finally:
        server.terminate()
        server.wait(30)


def _staged(tmp_path: Path, tiny: Path) -> JobBucket:
    """The job's folder in the bucket as `tunegate train` uploads it: spec.json and the data.
    400 steps, a checkpoint every 20: long enough that the first machine is still training
    when a complete checkpoint reaches the bucket and it is killed."""
    from gateway.spec.presets import resolve

    spec = local_job(tmp_path, tiny, n=32, valid=0, epochs=50, checkpoint_minutes=0)
    resolved, _ = resolve(spec, examples=32, p95_tokens=40, avg_tokens=30)
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chats(32)))
    config = {
        "job_id": "tg-synced",
        "backend": "local",
        "base_path": str(tiny),
        "files": {"train": "train.jsonl"},
        "spec": resolved.model_dump(mode="json"),
    }
    (staged / "spec.json").write_text(json.dumps(config))
    bucket = JobBucket(f"s3://{BUCKET}/jobs", "tg-synced")
    for path in staged.iterdir():
        bucket.put(path.name, path)
    return bucket


def _machine(bucket: JobBucket, folder: Path, log: Path) -> subprocess.Popen:
    worker = [sys.executable, "-m", "providers.local_hf.worker", str(folder), "--resume"]
    return subprocess.Popen(
        [sys.executable, "-m", "providers.runners.bucket_sync", bucket.uri, str(folder), "--",
         *worker],
        cwd=ROOT,
        env={**os.environ, "TUNEGATE_SYNC_S": "0.5", "TOKENIZERS_PARALLELISM": "false"},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the machine: sidecar and worker go down together
    )  # fmt: skip


def _complete(bucket: JobBucket) -> list[int]:
    names = bucket.names("checkpoints")
    return sorted(
        int(n.split("/")[1].rsplit("-", 1)[1]) for n in names if n.endswith(f"/{COMPLETE}")
    )


def test_a_preempted_machine_without_a_mount_resumes_from_the_bucket(s3, tmp_path, tiny):
    bucket = _staged(tmp_path, tiny)
    first = _machine(bucket, tmp_path / "machine-1", tmp_path / "machine-1.log")
    got = until(lambda: [s for s in _complete(bucket) if s >= 8], 240, 0.3)
    assert got, (tmp_path / "machine-1.log").read_text()[-3000:]
    os.killpg(first.pid, signal.SIGKILL)  # preempted: no final push
    first.wait(30)
    status = json.loads(bucket.read("status.json") or b"{}")
    assert status.get("state") == "running"  # what the first machine last pushed
    resumed_at = max(_complete(bucket))

    second = _machine(bucket, tmp_path / "machine-2", tmp_path / "machine-2.log")
    assert second.wait(600) == 0, (tmp_path / "machine-2.log").read_text()[-3000:]
    log = (tmp_path / "machine-2.log").read_text()
    assert f"resuming from checkpoint-{resumed_at}" in log
    status = json.loads(bucket.read("status.json") or b"{}")
    assert status["state"] == "succeeded" and status["resumed_from"] == resumed_at
    assert status["steps"] == status["total_steps"] == 400
    metrics = [json.loads(line) for line in (bucket.read("metrics.jsonl") or b"").splitlines()]
    after = [m["step"] for m in metrics if m.get("loss") is not None and m["step"] > resumed_at]
    assert after and min(after) > resumed_at  # carried on, did not start over
    assert "adapter/adapter_model.safetensors" in bucket.names("adapter")
    assert len(_complete(bucket)) <= KEEP  # older checkpoints pruned as new ones went up
    held = {n.split("/")[1] for n in bucket.names("checkpoints")}
    assert len(held) == len(_complete(bucket))  # nothing half-sent left behind
    # what the local side fetches on this route is what it fetches on the mounted one
    assert bucket.download("adapter", tmp_path / "fetched") >= 2
    assert (tmp_path / "fetched" / "adapter_config.json").is_file()
