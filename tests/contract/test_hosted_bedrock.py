"""Bedrock jobs end to end: boto3 against moto in server mode (S3, customization jobs) behind a
front that injects faults and serves what moto lacks."""

from __future__ import annotations

import hashlib

import pytest

from gateway.errors import ProviderError, SpecError
from gateway.facade.launch import launch
from gateway.journal import Journal
from gateway.spec import JobSpec
from tests.fakes._server import Faults
from tests.fakes.bedrock_api import BUCKET, REGION, ROLE, BedrockFake
from tests.support.job_files import job_file

BASE = "meta-llama/Llama-3.1-8B-Instruct"


def _needs_moto() -> None:
    for name in ("boto3", "moto.server", "flask"):
        pytest.importorskip(name)


@pytest.fixture
def fake(monkeypatch):
    _needs_moto()
    with BedrockFake() as server:
        server.env(monkeypatch)
        yield server


def _s3(fake):
    import boto3

    return boto3.client("s3", endpoint_url=fake.moto_url, region_name=REGION)


def test_launch_poll_artifact(fake, tmp_path):
    spec = JobSpec.from_yaml(job_file(tmp_path, BASE, n=40, training={"epochs": 2}))
    job = launch(spec, backend="bedrock")
    rec = job.wait(interval=0)
    assert rec.state == "succeeded", rec.error
    (name,) = fake.jobs
    remote = fake.jobs[name]
    assert name == rec.remote_id == "tg-" + rec.idempotency_key.removeprefix("tgk-")
    assert remote.role_arn == ROLE
    assert remote.client_request_token == rec.idempotency_key
    assert remote.base_model_identifier == "meta.llama3-1-8b-instruct-v1:0:128k"
    assert remote.hyper_parameters == {
        "epochCount": "2",
        "batchSize": "1",
        "learningRate": "0.0002",
    }
    # the training data is in S3, byte for byte what tunegate converted, in the Llama schema
    uri = remote.training_data_config["s3Uri"]
    assert uri == f"s3://{BUCKET}/tunegate/{name}/train.bedrock.jsonl"
    body = _s3(fake).get_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])["Body"].read()
    local = (tmp_path / "tg-home" / "jobs" / rec.id / "train.bedrock.jsonl").read_bytes()
    assert body == local and b'"prompt"' in body and b'"completion"' in body
    # the loss curve from the metrics CSV under the output prefix
    assert job.progress()["loss"] == pytest.approx(1.42)
    art = job.artifact()
    assert art.kind == "hosted-model" and art.uri == rec.remote["output_model_arn"]
    assert "Provisioned Throughput" in art.meta["serving"]
    with pytest.raises(ProviderError, match="does not release the weights"):
        job.artifact(merged=True)


def test_missing_role_is_a_clear_error_before_anything_is_made(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("TUNEGATE_BEDROCK_ROLE_ARN")
    spec = JobSpec.from_yaml(job_file(tmp_path, BASE, n=40))
    with pytest.raises(SpecError, match="IAM role") as err:
        launch(spec, backend="bedrock")
    assert "TUNEGATE_BEDROCK_ROLE_ARN" in str(err.value) and "config.yaml" in str(err.value)
    assert not fake.jobs and not Journal().jobs()


def test_role_and_bucket_from_the_config_file(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("TUNEGATE_BEDROCK_ROLE_ARN")
    monkeypatch.delenv("TUNEGATE_BEDROCK_S3_URI")
    home = tmp_path / "tg-home"
    home.mkdir(exist_ok=True)
    (home / "config.yaml").write_text(
        f"bedrock:\n  role_arn: {ROLE}\n  s3_uri: s3://{BUCKET}/cfg\n"
    )
    rec = launch(JobSpec.from_yaml(job_file(tmp_path, BASE, n=40)), backend="bedrock").record
    (remote,) = fake.jobs.values()
    assert remote.role_arn == ROLE
    assert remote.training_data_config["s3Uri"].startswith(f"s3://{BUCKET}/cfg/{rec.remote_id}/")
    (home / "config.yaml").write_text("bedrock:\n  role_arn: not-an-arn\n")
    with pytest.raises(SpecError, match=r"config.yaml:2: bedrock.role_arn"):
        launch(JobSpec.from_yaml(job_file(tmp_path, BASE, n=40)), backend="bedrock")


def test_lost_create_answer_is_adopted_not_repeated(fake, tmp_path):
    fake.script("POST", r"^/model-customization-jobs$", "lost")
    job = launch(JobSpec.from_yaml(job_file(tmp_path, BASE, n=40)), backend="bedrock")
    assert [k for _, _, k in fake.server.faults.injected] == ["lost"]
    assert len(fake.jobs) == 1 and "adopted" in [e.kind for e in job.events()]
    assert job.wait(interval=0).state == "succeeded"


def test_repeated_create_answers_the_same_job(fake, tmp_path):
    from gateway.facade.jobs import Job
    from providers.bedrock import Bedrock

    job = launch(JobSpec.from_yaml(job_file(tmp_path, BASE, n=40)), backend="bedrock")
    rec = Job(job.id).record
    spec = JobSpec.model_validate({k: v for k, v in rec.spec.items() if k != "_origin"})
    assert Bedrock().create(rec, spec) == rec.remote_id
    assert len(fake.jobs) == 1 and len(fake.requests("POST", r"^/model-customization-jobs$")) == 2


def test_stop_and_failure(fake, tmp_path):
    job = launch(JobSpec.from_yaml(job_file(tmp_path, BASE, n=40)), backend="bedrock")
    assert job.cancel().state == "cancelled"
    assert fake.jobs[job.record.remote_id].status == "Stopped"
    fake.fail_next_job = "ValidationException: row 3 has no completion"
    (tmp_path / "b").mkdir()
    job2 = launch(JobSpec.from_yaml(job_file(tmp_path / "b", BASE, n=40)), backend="bedrock")
    rec = job2.wait(interval=0)
    assert rec.state == "failed" and "row 3 has no completion" in rec.error


def test_too_few_rows_and_out_of_range_settings_are_refused_up_front(fake, tmp_path):
    with pytest.raises(SpecError, match="at least 32"):
        launch(JobSpec.from_yaml(job_file(tmp_path, BASE, n=12)), backend="bedrock")
    from gateway.errors import PlanError

    spec = JobSpec.from_yaml(job_file(tmp_path, BASE, n=40, training={"epochs": 12}))
    with pytest.raises(PlanError, match="epochCount 1-10"):
        launch(spec, backend="bedrock")
    assert not fake.jobs


def test_multipart_upload_is_verified_and_not_repeated(fake, tmp_path, monkeypatch):
    from providers.s3 import upload_verified

    monkeypatch.setenv("TUNEGATE_S3_PART_MB", "5")
    path = tmp_path / "big.jsonl"
    path.write_bytes(bytes(range(256)) * (48 * 1024))  # 12 MiB: three parts
    s3 = _s3(fake)
    obj = upload_verified(s3, path, f"s3://{BUCKET}/big/train.jsonl")
    assert obj.parts == 3 and obj.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    head = s3.head_object(Bucket=BUCKET, Key="big/train.jsonl")
    assert head["ContentLength"] == path.stat().st_size and head["ETag"].endswith('-3"')
    before = head["LastModified"]
    again = upload_verified(s3, path, f"s3://{BUCKET}/big/train.jsonl")
    assert again == obj
    assert s3.head_object(Bucket=BUCKET, Key="big/train.jsonl")["LastModified"] == before
    # a different file under the same key is uploaded and verified afresh
    path.write_bytes(b"x" * 1000)
    small = upload_verified(s3, path, f"s3://{BUCKET}/big/train.jsonl")
    assert small.parts == 1 and small.bytes == 1000


def test_thirty_percent_faults_one_job_per_launch(monkeypatch, tmp_path):
    _needs_moto()
    faults = Faults(
        rate=0.3, seed=5, slow_s=2.5, kinds=("429", "500", "503", "slow", "drop", "lost")
    )
    with BedrockFake(faults) as fake:
        fake.env(monkeypatch)
        for i in range(3):
            work = tmp_path / f"run{i}"
            work.mkdir()
            job = launch(JobSpec.from_yaml(job_file(work, BASE, n=40)), backend="bedrock")
            assert job.wait(interval=0).state == "succeeded"
            assert job.artifact().kind == "hosted-model"
        assert len(fake.jobs) == 3
        kinds = {k for _, _, k in faults.injected}
        assert {"429", "500"} <= kinds, faults.injected
        assert any(m == "POST" for m, _, _ in faults.injected)  # creates were faulted too
