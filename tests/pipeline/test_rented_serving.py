"""`tunegate deploy JOB --to rented` against a real local SkyPilot API server (SkyServe in
consolidation mode, moto for AWS; tests/support/sky_server.py). Nothing can be provisioned,
so the replicas go PENDING -> PROVISIONING -> FAILED_PROVISION, which is what the lifecycle
needs:

- the plan at 200M tokens/day picks a rented fleet, and the deploy takes that route: one
  service, its name carrying the deployment's key, journaled before `up`, the adapter uploaded
  to the bucket for the replicas to copy;
- a deploy killed after `up` is adopted by name by the next run (still one service);
- a changed spec (`--serve` doubled) updates the service in place (a new version, one service);
- `tunegate deployments` reports the replicas' states and what the fleet has cost;
- the "replica" is played by a local llama.cpp engine holding the engine key, reached through
  `tunegate serve` (a wrong key is refused by the engine) and metered at the fleet's price;
- `undeploy` leaves SkyServe's status empty; the engine key is in nothing tunegate journals,
  prints or logs.
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
    spec = {"base_model": BASE, "train": "train.jsonl", "serving": {"tokens_per_day": 200_000_000},
            "training": {"max_seq_len": 512}}  # fmt: skip
    with Journal() as journal:
        rec = journal.record_intent("local", "local", BASE, spec, name="voice")
        journal.update(rec.id, state="succeeded")
    shutil.copytree(Path(smollm2_gguf.path).parent / "adapter", JobDir(job_dir(rec.id)).adapter)
    return rec


def _cli(*args: str) -> dict:
    out = CliRunner().invoke(main, [*args, "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def _services(name: str) -> list[dict]:
    found = sky_serve.status(name)
    return [found] if found else []


def test_deploy_adopt_update_serve_and_undeploy_a_rented_fleet(job, monkeypatch, smollm2_gguf):
    # the plan at 200M tokens/day serves from a rented fleet on RunPod, the route a deploy
    # without --on takes (tests/unit/exporters/test_rented.py); RunPod's `sky check` asks its
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
    assert any(k.endswith("adapter_config.json") for k in _s3_keys(f"jobs/deployments/{service}/"))

    # the next run adopts it: still one service, now live
    dep = _cli("deploy", job.id, "--to", "rented", "--on", "aws", "--serve", "200M/day")
    assert dep["id"] == pending["id"] and dep["state"] == "live"
    assert dep["meta"]["service_action"] == "adopted" and dep["meta"]["cloud"] == "aws"
    assert dep["meta"]["route"].startswith("1 x t4-16gb (aws)")
    assert len(_services(service)) == 1 and dep["endpoint"].startswith("http://")

    # a changed spec (more replicas for more traffic) updates the same service in place
    again = _cli("deploy", job.id, "--to", "rented", "--on", "aws", "--serve", "10B/day")
    assert again["id"] == dep["id"] and again["meta"]["service_action"] == "updated"
    assert again["meta"]["min_replicas"] > dep["meta"]["min_replicas"]
    (now,) = _services(service)
    assert now["spec_sha"] == again["meta"]["spec_sha"] != dep["meta"]["spec_sha"]

    # replica states, and the running cost
    listed = {d["id"]: d for d in _cli("deployments")}
    live = listed[dep["id"]]["live"]
    assert live["replicas"] and {r["status"] for r in live["replicas"]} <= {
        "PENDING", "PROVISIONING", "STARTING", "FAILED_PROVISION", "FAILED", "SHUTTING_DOWN",
    }  # fmt: skip
    assert live["accrued_usd"] > 0  # its hours since the deploy, at the plan's replicas x $/h

    key = sky_serve.engine_key(service)
    _served_by_a_local_replica(again, key, smollm2_gguf)

    out = CliRunner().invoke(main, ["undeploy", dep["id"], "--json"])
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


def _served_by_a_local_replica(dep: dict, key: str, gguf) -> None:
    """llama.cpp's server on SmolLM2 holds the engine key and the LoRA's name, as vLLM on a
    replica does; the deployment's endpoint points at it; `tunegate serve` reaches it."""
    from exporters.deploy.process import free_port
    from gateway.serve import running

    port = free_port()
    engine = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf.files[0]), "--host",
         "127.0.0.1", "--port", str(port), "--api_key", key, "--model_alias",
         dep["meta"]["lora_name"], "--n_ctx", "512"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        assert until(lambda: _answers(url + "/v1/models", key), timeout=120)
        assert (
            httpx.get(url + "/v1/models", headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        with Journal() as journal:
            journal.update_deployment(dep["id"], endpoint=url)
        with running() as door:
            client = openai.OpenAI(base_url=door, api_key="x", max_retries=0)
            reply = client.chat.completions.create(
                model=dep["name"], messages=[{"role": "user", "content": "Hi"}], max_tokens=8
            )
            assert reply.choices[0].message.content is not None
        usage = _cli("usage")
        (row,) = [r for r in usage["rows"] if r["id"] == dep["id"]]
        assert row["requests"] == 1 and f"{dep['meta']['hardware']} (aws)" in row["price"]
    finally:
        engine.terminate()
        engine.wait(30)


def _answers(url: str, key: str) -> bool:
    try:
        return (
            httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=2).status_code == 200
        )
    except httpx.HTTPError:
        return False
