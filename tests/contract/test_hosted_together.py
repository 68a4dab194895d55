"""Together jobs end to end: the official `together` SDK against a local fake of its REST API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gateway.facade.launch import launch
from gateway.spec import JobSpec
from tests.fakes.together_api import TOTAL_STEPS, TogetherFake
from tests.support.job_files import job_file

BASE = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def fake(monkeypatch):
    pytest.importorskip("together")
    pytest.importorskip("zstandard")  # Together's archives
    with TogetherFake() as server:
        server.env(monkeypatch)
        yield server


@pytest.mark.parametrize("objective", ["sft", "dpo"])
def test_launch_wait_fetch_adapter(fake, tmp_path, objective):
    spec = JobSpec.from_yaml(job_file(tmp_path, BASE, objective, method="lora"))
    quotes = []
    job = launch(spec, backend="together", confirm=lambda rec, quote: quotes.append(quote) or True)
    assert quotes[0]["available"] and quotes[0]["usd"] > 0
    rec = job.wait(interval=0.01)
    assert rec.state == "succeeded", rec.error
    (remote,) = fake.jobs.values()
    assert "steps_completed" not in remote  # not in FinetuneResponse: progress from metrics
    assert job.progress()["step"] == TOTAL_STEPS
    assert remote["training_method"]["method"] == objective
    assert (
        remote["training_type"]["type"] == "Lora"
        and remote["training_type"]["lora_r"] == rec.spec["lora"]["rank"]
    )
    assert remote["suffix"].endswith(rec.idempotency_key.removeprefix("tgk-")[:20])
    assert rec.actual["usd"] == pytest.approx(remote["total_price"] / 1e9)
    art = job.artifact()
    adapter = Path(art.uri)
    assert json.loads((adapter / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert art.sha256 == hashlib.sha256(fake.archive).hexdigest()
    assert job.artifact().id == art.id  # second call comes from the journal
    assert set(fake.downloads) == {"adapter"}
    merged = job.artifact(merged=True)
    assert merged.kind == "merged" and fake.downloads[-1] == "merged"


def test_download_resumes_after_a_cut_and_after_a_restart(fake, tmp_path):
    from gateway.facade.jobs import Job, job_dir

    spec = JobSpec.from_yaml(job_file(tmp_path, BASE))
    job = launch(spec, backend="together")
    assert job.wait(interval=0).state == "succeeded"
    fake.truncate_next_download = True
    art = job.artifact(tmp_path / "first")
    ranges = [r.headers.get("range") for r in fake.server.requests if "download" in r.path]
    assert ranges[0] is None and ranges[1] == f"bytes={len(fake.archive) // 2}-"
    assert art.sha256 == hashlib.sha256(fake.archive).hexdigest()
    # a previous process died mid-download: its .partial prefix is continued, not refetched
    partial = tmp_path / "second.tar.partial"
    partial.write_bytes(fake.archive[:100])
    fake.server.requests.clear()
    art2 = Job(job.id).artifact(tmp_path / "second")
    ranges = [r.headers.get("range") for r in fake.server.requests if "download" in r.path]
    assert ranges == ["bytes=100-"] and art2.sha256 == art.sha256
    assert (Path(art2.uri) / "adapter_model.safetensors").exists()
    assert job_dir(job.id).is_dir()


def test_serverless_lora_deploy_and_chat(fake, tmp_path):
    from gateway.facade.deploy import chat, deploy, undeploy

    job = launch(JobSpec.from_yaml(job_file(tmp_path, BASE, method="lora")), backend="together")
    assert job.wait(interval=0).state == "succeeded"
    dep = deploy(job.id, "together")
    model = job.record.remote["model_output_name"]
    assert dep.state == "live" and dep.endpoint == model
    reply = chat(dep.id, "hello")
    assert reply.text == f"[{model}] olleh" and reply.finish_reason == "stop"
    assert undeploy(dep.id).state == "removed"


def test_full_fine_tune_goes_to_a_dedicated_endpoint(fake, tmp_path, monkeypatch):
    from gateway.facade.deploy import chat, deploy, undeploy

    monkeypatch.setenv("TOGETHER_PROJECT_ID", fake.v2.project)
    job = launch(JobSpec.from_yaml(job_file(tmp_path, BASE, method="full")), backend="together")
    assert job.wait(interval=0).state == "succeeded"
    dep = deploy(job.id, "together", name="voice-full")
    # the result was downloaded, uploaded as a project model and served on its own endpoint
    (endpoint,) = fake.v2.endpoints.values()
    (deployment,) = fake.v2.deployments.values()
    assert (
        endpoint["name"] == "proj-1/tg-voice-full" and deployment["autoscaling"]["maxReplicas"] == 1
    )
    assert dep.meta["endpoint_id"] == endpoint["id"]
    assert chat(dep.id, "abc").text.endswith("cba")
    assert undeploy(dep.id).state == "removed" and not fake.v2.endpoints and not fake.v2.deployments


def test_local_adapter_upload_in_parts_attach_and_reuse(fake, tmp_path, monkeypatch):
    from exporters.deploy import together as together_serving
    from gateway.facade.deploy import chat, deploy

    monkeypatch.setenv("TOGETHER_PROJECT_ID", fake.v2.project)
    monkeypatch.setattr(together_serving, "PART_BYTES", 1024)
    folder = tmp_path / "adapter"
    folder.mkdir()
    cfg = {
        "peft_type": "LORA",
        "r": 8,
        "target_modules": ["q_proj"],
        "base_model_name_or_path": BASE,
    }
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    weights = bytes(range(256)) * 12  # 3072 bytes: three 1 KiB parts
    (folder / "adapter_model.safetensors").write_bytes(weights)
    dep = deploy(str(folder), "together", name="shop-voice")
    (model,) = fake.v2.models.values()
    assert (
        model["type"] == "adapter"
        and model["baseModelId"] == "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    )
    assert fake.v2.files[model["id"]]["adapter_model.safetensors"] == weights
    assert fake.v2.part_puts == 4  # 3 parts + the one-part config
    (deployment,) = fake.v2.deployments.values()
    assert deployment["modelId"] == model["baseModelId"]  # the base serves, the adapter attaches
    (att,) = fake.v2.adapters.values()
    assert att["adapterModelId"] == model["id"]
    assert dep.endpoint == model["name"]
    assert chat(dep.id, "xyz").text == f"[{model['name']}] zyx"
    # deploying again finds the model, skips the upload, reuses the endpoint and deployment
    deploy(str(folder), "together", name="shop-voice")
    assert fake.v2.part_puts == 4 and len(fake.v2.models) == 1
    assert len(fake.v2.endpoints) == 1 and len(fake.v2.deployments) == 1
