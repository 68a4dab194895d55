"""Fireworks jobs end to end: the official `fireworks-ai` SDK against a local fake of its API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gateway.facade.launch import launch
from gateway.spec import JobSpec
from tests.fakes._server import Faults
from tests.fakes.fireworks_api import FireworksFake, adapter_files
from tests.support.job_files import job_file

BASE = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def fake(monkeypatch):
    pytest.importorskip("fireworks")
    with FireworksFake() as server:
        server.env(monkeypatch)
        yield server


def test_sft_launch_wait_fetch_adapter(fake, tmp_path):
    spec = JobSpec.from_yaml(
        job_file(tmp_path, BASE, method="lora", lora={"rank": 32}, training={"epochs": 2})
    )
    job = launch(spec, backend="fireworks")
    rec = job.wait(interval=0)
    assert rec.state == "succeeded", rec.error
    (remote_id,) = fake.jobs
    remote = fake.jobs[remote_id]
    assert remote_id == rec.remote_id == "tg-" + rec.idempotency_key.removeprefix("tgk-")
    assert remote["baseModel"] == "accounts/fireworks/models/llama-v3p1-8b-instruct"
    assert remote["loraRank"] == 32 and remote["epochs"] == 2
    assert remote["dataset"] == f"accounts/acme/datasets/{remote_id}-train"
    assert fake.datasets[f"{remote_id}-train"]["exampleCount"] == "12"
    assert rec.remote["output_model"] == f"accounts/acme/models/{remote['outputModel']}"
    assert rec.actual["usd"] > 0 and rec.actual["source"] == "Fireworks estimatedCost"
    assert job.progress()["step"] == 100
    art = job.artifact()
    assert art.kind == "adapter"
    folder = Path(art.uri)
    want = adapter_files(32)
    assert {p.name for p in folder.iterdir()} == set(want)
    for name, data in want.items():
        assert (folder / name).read_bytes() == data
        assert art.meta["files"][name] == hashlib.sha256(data).hexdigest()
    assert json.loads((folder / "adapter_config.json").read_text())["r"] == 32
    assert job.artifact().id == art.id  # from the journal the second time


def test_dpo_sets_the_loss_method_explicitly(fake, tmp_path):
    spec = JobSpec.from_yaml(
        job_file(tmp_path, BASE, "dpo", training={"epochs": 1, "dpo_beta": 0.2})
    )
    rec = launch(spec, backend="fireworks").wait(interval=0)
    assert rec.state == "succeeded", rec.error
    (remote,) = fake.jobs.values()
    assert remote["_kind"] == "dpoJobs"
    assert remote["lossConfig"] == {"method": "DPO", "dpo": {"beta": 0.2}}
    assert remote["trainingConfig"]["baseModel"].startswith("accounts/fireworks/models/")
    rows = fake.contents[remote["dataset"].rsplit("/", 1)[-1]].decode().splitlines()
    assert {"input", "preferred_output", "non_preferred_output"} <= set(json.loads(rows[0]))


def test_lost_create_answer_is_adopted_not_repeated(fake, tmp_path):
    fake.server.faults.script("POST", r"/supervisedFineTuningJobs$", "lost")
    job = launch(JobSpec.from_yaml(job_file(tmp_path, BASE)), backend="fireworks")
    assert len(fake.jobs) == 1
    assert [k for _, _, k in fake.server.faults.injected] == ["lost"]
    assert "adopted" in [e.kind for e in job.events()]
    creates = [r for r in fake.server.requests if r.path.endswith("/supervisedFineTuningJobs")]
    # the repeated create carries the same client-chosen id, so it can only answer 409
    assert len({r.query["supervisedFineTuningJobId"] for r in creates}) == 1
    assert job.wait(interval=0).state == "succeeded"


def test_refused_create_fails_without_retry(fake, tmp_path):
    fake.server.faults.script("POST", r"/supervisedFineTuningJobs$", "400")
    from gateway.errors import ProviderError

    with pytest.raises(ProviderError, match="refused"):
        launch(JobSpec.from_yaml(job_file(tmp_path, BASE)), backend="fireworks")
    assert not fake.jobs


def test_cancel(fake, tmp_path):
    job = launch(JobSpec.from_yaml(job_file(tmp_path, BASE)), backend="fireworks")
    rec = job.cancel()
    assert rec.state == "cancelled"
    assert fake.jobs[rec.remote_id]["state"] == "JOB_STATE_CANCELLED"


def test_model_without_downloads_is_a_hosted_artifact(fake, tmp_path):
    fake.downloadable = False
    job = launch(JobSpec.from_yaml(job_file(tmp_path, BASE)), backend="fireworks")
    assert job.wait(interval=0).state == "succeeded"
    art = job.artifact()
    assert art.kind == "hosted-model" and art.uri.startswith("accounts/acme/models/")


def test_cut_download_resumes(fake, tmp_path):
    job = launch(JobSpec.from_yaml(job_file(tmp_path, BASE)), backend="fireworks")
    assert job.wait(interval=0).state == "succeeded"
    fake.truncate_next_download = True
    art = job.artifact(tmp_path / "adapter")
    ranges = [r.headers.get("range") for r in fake.server.requests if r.path.startswith("/signed")]
    assert any(r and r.startswith("bytes=") for r in ranges)
    (model,) = fake.models.values()
    for name, data in model.items():
        assert (Path(art.uri) / name).read_bytes() == data


def test_thirty_percent_faults_one_job_per_launch(monkeypatch, tmp_path):
    pytest.importorskip("fireworks")
    faults = Faults(rate=0.3, seed=11, slow_s=0.8)
    with FireworksFake(faults) as server:
        server.env(monkeypatch)
        for i in range(3):
            work = tmp_path / f"run{i}"
            work.mkdir()
            job = launch(JobSpec.from_yaml(job_file(work, BASE)), backend="fireworks")
            assert job.wait(interval=0).state == "succeeded"
            assert job.artifact().kind == "adapter"
        assert len(server.jobs) == 3
        assert {"429", "drop"} <= {k for _, _, k in faults.injected}


def test_fake_paginates_like_the_sdk_expects(fake, tmp_path):
    """The fake's list pages are what the SDK's cursor pager follows."""
    from fireworks import Fireworks

    for i in range(3):
        work = tmp_path / f"run{i}"
        work.mkdir()
        launch(JobSpec.from_yaml(job_file(work, BASE)), backend="fireworks")
    client = Fireworks(max_retries=0)
    listed = [j.name for j in client.supervised_fine_tuning_jobs.list()]
    assert len(listed) == 3 and len({*listed}) == 3
    pages = [r for r in fake.server.requests if r.method == "GET" and r.path.endswith("Jobs")]
    assert len(pages) == 2 and pages[1].query["pageToken"] == "2"


def test_a_repeated_create_answers_the_same_job(fake, tmp_path):
    """A create repeated after the first got through (409 ALREADY_EXISTS) returns that job."""
    from gateway.facade.jobs import Job
    from providers.fireworks import Fireworks

    job = launch(JobSpec.from_yaml(job_file(tmp_path, BASE)), backend="fireworks")
    rec = Job(job.id).record
    spec = JobSpec.model_validate({k: v for k, v in rec.spec.items() if k != "_origin"})
    assert Fireworks().create(rec, spec) == rec.remote_id
    assert len(fake.jobs) == 1
    statuses = [r for r in fake.server.requests if r.path.endswith("/supervisedFineTuningJobs")]
    assert len(statuses) == 2


def test_deploy_a_jobs_lora_chat_and_undeploy(fake, tmp_path):
    from gateway.facade.deploy import chat, deploy, undeploy

    job = launch(JobSpec.from_yaml(job_file(tmp_path, BASE)), backend="fireworks")
    assert job.wait(interval=0).state == "succeeded"
    model = job.record.remote["output_model"]
    dep = deploy(job.id, "fireworks")
    assert dep.state == "live" and dep.endpoint.startswith(f"{model}#accounts/acme/deployments/tg-")
    (remote,) = fake.deployments.values()
    assert remote["enableAddons"] is True and remote["minReplicaCount"] == 0
    assert remote["baseModel"] == "accounts/fireworks/models/llama-v3p1-8b-instruct"
    (loaded,) = fake.deployed.values()
    assert loaded["model"] == model and loaded["state"] == "DEPLOYED"
    reply = chat(dep.id, "hello")
    assert reply.text == f"[{model}] olleh" and reply.finish_reason == "stop"
    assert undeploy(dep.id).state == "removed"
    assert not fake.deployments and not fake.deployed


def test_deploy_uploads_a_local_adapter(fake, tmp_path):
    from gateway.facade.deploy import chat, deploy

    folder = tmp_path / "my-adapter"
    folder.mkdir()
    config = {
        "peft_type": "LORA",
        "r": 16,
        "lora_alpha": 32,
        "target_modules": ["v_proj", "q_proj"],
        "base_model_name_or_path": BASE,
    }
    (folder / "adapter_config.json").write_text(json.dumps(config))
    weights = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(1000)
    (folder / "adapter_model.safetensors").write_bytes(weights)
    dep = deploy(str(folder), "fireworks", name="My LoRA")
    meta = fake.model_meta["tg-my-lora"]
    assert meta["kind"] == "HF_PEFT_ADDON" and meta["state"] == "READY"
    assert meta["peftDetails"] == {
        "baseModel": "accounts/fireworks/models/llama-v3p1-8b-instruct",
        "r": 16,
        "targetModules": ["q_proj", "v_proj"],
    }
    assert fake.models["tg-my-lora"]["adapter_model.safetensors"] == weights
    assert chat(dep.id, "abc").text == "[accounts/acme/models/tg-my-lora] cba"
    # deploying again reuses the uploaded model and the deployment (409s), nothing doubles
    deploy(str(folder), "fireworks", name="My LoRA")
    assert len(fake.deployments) == 1 and len(fake.model_meta) == 1


def test_deploy_refuses_a_rank_fireworks_cannot_serve(fake, tmp_path):
    from gateway.errors import ExportError
    from gateway.facade.deploy import deploy

    folder = tmp_path / "big"
    folder.mkdir()
    cfg = {"r": 128, "target_modules": ["q_proj"], "base_model_name_or_path": BASE}
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    (folder / "adapter_model.safetensors").write_bytes(b"x")
    with pytest.raises(ExportError, match="ranks 4-64"):
        deploy(str(folder), "fireworks")
    assert not fake.model_meta
