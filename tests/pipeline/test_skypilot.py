"""Rented GPUs through SkyPilot, offline, with SkyPilot itself (0.14, in its own environment:
`make test` builds .venv-sky) driven through tunegate's bridge:

- the task built from a journaled rented job, round-tripped through `Task.from_yaml_config`;
- SkyPilot's optimizer in-process on fixture catalogs of three clouds picks the cheapest, as
  SkyPilot's own tests run it; prices read from the same catalogs;
- states mapped from a managed-job queue, metrics and the adapter read from the bucket (moto).

The lifecycle against a real local API server is tests/pipeline/test_skypilot_server.py.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from gateway.errors import ProviderError
from gateway.facade.plan import plan
from gateway.journal import Journal
from gateway.spec import JobSpec
from providers.runners import sky_jobs as _sky_jobs

ROOT = Path(__file__).resolve().parents[2]
SKY_PYTHON = os.environ.get("TUNEGATE_SKYPILOT_PYTHON") or str(
    ROOT / ".venv-sky" / "bin" / "python"
)
if not Path(SKY_PYTHON).exists():
    pytest.skip(
        "SkyPilot's environment is missing (make test builds .venv-sky)", allow_module_level=True
    )
FIXTURES = ROOT / "tests" / "fixtures" / "sky_catalogs"
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def sky_home(tmp_path, monkeypatch):
    """SkyPilot with a home of its own: the fixture catalogs, no usage reports."""
    home = tmp_path / "sky-home"
    (home / ".sky" / "catalogs").mkdir(parents=True)
    shutil.copytree(FIXTURES / "v8", home / ".sky" / "catalogs" / "v8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TUNEGATE_SKYPILOT_PYTHON", SKY_PYTHON)
    monkeypatch.setenv("TUNEGATE_SKYPILOT_BUCKET", "s3://tg-rented/jobs")
    return home


def _rented_job(journal: Journal, **resources):
    spec = JobSpec.from_options(
        None, base="meta-llama/Llama-3.1-8B-Instruct", method="qlora", max_usd=5
    )
    if resources:
        spec = spec.with_overrides({"resources": resources})
    the_plan = plan(spec, examples=5000, avg_tokens=600)
    offer = next(o for o in the_plan.offers if o.kind == "rented" and o.feasible)
    return journal.record_intent(
        offer.provider,
        "sft",
        spec.base_model,
        the_plan.spec.model_dump(mode="json"),
        offer=offer.to_json(),
        estimate={"train_usd": offer.train_usd.to_json()},
    ), offer


def test_the_task_round_trips_through_skypilot():
    with Journal() as journal:
        rec, offer = _rented_job(journal, spot=True, gpus=2)
    request = _sky_jobs.task_request(rec, "providers.unsloth.worker", "local,unsloth")
    got = _sky_jobs.bridge("task", request)
    config = got["config"]
    assert config["name"] == _sky_jobs.job_name(rec) and rec.id in config["name"]
    anys = config["resources"]["any_of"]
    names = [next(iter(r["accelerators"])) for r in anys]
    first = request["accelerators"][0]["name"]
    assert first in names and len(names) > 1  # the offer's GPU and the others that fit
    assert all(r["use_spot"] is True and list(r["accelerators"].values()) == [2] for r in anys)
    hourly = 5 / offer.train_hours.likely
    assert all(r["max_hourly_cost"] == pytest.approx(hourly, rel=1e-3) for r in anys)
    assert all(r["job_recovery"]["strategy"] == "FAILOVER" for r in anys)
    mount = config["file_mounts"][_sky_jobs.MOUNT]  # the bucket, whole; JOBDIR inside it
    assert {k: v for k, v in mount.items() if k != "persistent"} == {
        "source": "s3://tg-rented",
        "mode": "MOUNT_CACHED",
    }
    assert "--nproc_per_node=$SKYPILOT_NUM_GPUS_PER_NODE" in config["run"]  # 2 GPUs: torchrun
    jobdir = f"{_sky_jobs.MOUNT}/jobs/{rec.id}"
    assert config["run"].endswith(f"-m providers.unsloth.worker {jobdir} --resume")
    assert "local,unsloth" in config["setup"]
    # what SkyPilot reads back is what was built
    back = got["round_trip"]

    def canonical(cfg):  # any_of is a set: compare it in one order
        out = json.loads(json.dumps(cfg))
        out["resources"]["any_of"].sort(key=lambda r: json.dumps(r, sort_keys=True))
        return out

    assert canonical(back) == canonical(config)


def test_on_a_cloud_that_cannot_mount_the_worker_syncs_the_folder(monkeypatch):
    """RunPod: no bucket mount; the worker runs under bucket_sync against the same bucket
    folder, the storage credentials go as task secrets, and SkyPilot's own config of the task
    (what it shows and logs) does not hold them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSYNCEDROUTE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-any-log-0123456789")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with Journal() as journal:
        rec, offer = _rented_job(journal, cloud="runpod")
    assert offer.cloud == "runpod" and offer.launchable
    request = _sky_jobs.task_request(rec, "providers.local_hf.worker", "local", sync=True)
    assert request["secrets"]["AWS_ACCESS_KEY_ID"] == "AKIDSYNCEDROUTE"
    got = _sky_jobs.bridge("task", request)
    config = got["config"]
    assert not config.get("file_mounts")
    bucket = f"s3://tg-rented/jobs/{rec.id}"
    jobdir = _sky_jobs.SYNCED_JOBDIR
    assert config["run"] == (
        f"python -m providers.runners.bucket_sync {bucket} {jobdir} -- "
        f"python -m providers.local_hf.worker {jobdir} --resume"
    )
    assert {r.get("infra") for r in config["resources"].get("any_of", [config["resources"]])} == {
        "runpod"
    }
    shown = json.dumps(got)
    assert "not-for-any-log-0123456789" not in shown and "AKIDSYNCEDROUTE" not in shown
    # the several-node route needs a mounted bucket: refused before anything is launched
    spread = rec.spec | {"resources": {**rec.spec["resources"], "nodes": 2}}
    rec2 = type(rec)(**{**rec.__dict__, "spec": spread})
    with pytest.raises(ProviderError, match="cannot mount a bucket and runs one node"):
        _sky_jobs.task_request(rec2, "providers.local_hf.worker", "local", sync=True)


def test_a_bad_task_is_refused_with_skypilots_reason():
    with Journal() as journal:
        rec, _ = _rented_job(journal)
    request = {**_sky_jobs.task_request(rec, "providers.local_hf.worker", "local")}
    request["file_mounts"] = {_sky_jobs.MOUNT: {"source": "s3://b/x", "mode": "SOMETIMES"}}
    with pytest.raises(ProviderError, match="SOMETIMES"):
        _sky_jobs.bridge("task", request)


@pytest.mark.parametrize(("spot", "usd"), [(False, 1.19), (True, 0.79)])
def test_the_optimizer_picks_the_cheapest_cloud_from_the_catalogs(spot, usd):
    request = {
        "name": "tg-opt",
        "run": "true",
        "accelerators": [{"name": "A100-80GB", "count": 1}],
        "spot": spot,
        "clouds": ["lambda", "runpod"],
    }
    best = _sky_jobs.bridge("optimize", request)
    assert best["cloud"] == "RunPod" and best["region"] == "CA"
    assert best["instance_type"] == "1x_A100-80GB_SECURE"
    assert best["usd_per_hour"] == pytest.approx(usd)
    if spot:  # Lambda rents no spot instances: SkyPilot's reason comes through
        with pytest.raises(ProviderError, match="Spot instances are not supported in Lambda"):
            _sky_jobs.bridge("optimize", {**request, "clouds": ["lambda"]})
        return
    only_lambda = _sky_jobs.bridge("optimize", {**request, "clouds": ["lambda"]})
    assert only_lambda["cloud"] == "Lambda" and only_lambda["usd_per_hour"] > usd


def test_prices_from_the_catalogs_keep_their_quirks():
    clouds = ["lambda", "runpod", "vast"]
    request = {"accelerators": ["A100-80GB", "L4"], "count": 1, "clouds": clouds}
    rows = _sky_jobs.bridge("prices", request)["offers"]
    by = {(r["accelerator"], r["cloud"]): r for r in rows}
    assert by[("A100-80GB", "RunPod")]["spot_usd_per_hour"] == 0.79
    assert by[("A100-80GB", "Vast")]["spot_usd_per_hour"] is None  # Vast's 0.00: no spot
    assert by[("A100-80GB", "Lambda")]["spot_usd_per_hour"] is None  # none in the CSV
    assert by[("L4", "Vast")]["region"] == "Texas, US, NA"
    assert all(r["count"] == 1 for r in rows)


def test_no_skypilot_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEGATE_SKYPILOT_PYTHON", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(_sky_jobs, "ROOT", tmp_path)  # no checkout .venv-sky either
    if _sky_jobs.sky_python() is not None:  # SkyPilot importable here: nothing to check
        pytest.skip("SkyPilot is importable from tunegate's own environment")
    with pytest.raises(ProviderError, match="pipx install"):
        _sky_jobs.bridge("enabled", {})
    assert "not installed" in (_sky_jobs.not_ready() or "")


def test_states_metrics_and_adapter_from_the_bucket(monkeypatch):
    """A managed job as the queue reports it, its worker's files in the bucket (moto's S3)."""
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    from gateway.facade.jobs import Job

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    queue: list[dict] = []
    monkeypatch.setattr(
        _sky_jobs,
        "bridge",
        lambda command, request, timeout=900: {"jobs": list(queue)} if command == "queue" else {},
    )  # SkyPilot's answers; the server test drives the real ones
    with moto.mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="tg-rented")
        with Journal() as journal:
            rec, _ = _rented_job(journal)
            rec = journal.update(rec.id, remote_id="sky:7", state="queued")
        prefix = f"jobs/{rec.id}"
        queue.append({"job_id": 7, "name": _sky_jobs.job_name(rec), "status": "PENDING"})
        job = Job(rec.id)
        assert job.status().state == "queued"
        metrics = [{"step": s, "total_steps": 4, "loss": 3.0 - s / 2} for s in (1, 2)]
        s3.put_object(
            Bucket="tg-rented",
            Key=f"{prefix}/metrics.jsonl",
            Body="".join(json.dumps(m) + "\n" for m in metrics),
        )
        queue[0] = {**queue[0], "status": "RECOVERING", "recovery_count": 1}
        state = job.status()
        assert state.state == "running"
        events = [e.message for e in job.events()]
        assert any("preempted, recovering" in m for m in events)
        assert job.progress()["step"] == 2
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            s3.put_object(Bucket="tg-rented", Key=f"{prefix}/adapter/{name}", Body=b"{}")
        s3.put_object(Bucket="tg-rented", Key=f"{prefix}/status.json", Body=b'{"steps": 4}')
        queue[0] = {**queue[0], "status": "SUCCEEDED", "submitted_at": 0, "end_at": 3600}
        done = job.status()
        assert done.state == "succeeded"
        assert done.actual["usd"] > 0 and "offer's price" in done.actual["source"]
        art = job.artifact()
        assert Path(art.uri, "adapter_model.safetensors").is_file()
        queue[0] = {**queue[0], "status": "FAILED_NO_RESOURCE", "failure_reason": "no H100"}
        with Journal() as journal:
            again, _ = _rented_job(journal)
            journal.update(again.id, remote_id="sky:7", state="queued")
        failed = Job(again.id).status()
        assert failed.state == "failed" and "no H100" in failed.error


def test_the_plans_rented_fleet_is_the_service_and_it_round_trips(monkeypatch):
    """`tunegate plan --serve 200M/day` and `deploy --to rented` agree on the fleet (Llama-3.1-8B:
    RTX 3090s on RunPod, the issue's example), and the SkyServe task built for it survives
    SkyPilot's own `Task.from_yaml_config`: the replica port on the resources *and* the
    service, the adapter copied (`mode: COPY`: RunPod cannot mount a bucket), the autoscaling
    policy with an on-demand floor under spot, the probe behind the engine key, which no
    answer carries back."""
    from exporters.deploy.base import DeployOptions, DeploySource
    from exporters.deploy.rented import RentedFleet
    from providers.runners import sky_serve

    base = "meta-llama/Llama-3.1-8B-Instruct"
    spec = JobSpec.from_options(None, base=base, method="lora").with_overrides(
        {"serving": {"tokens_per_day": 200_000_000}}
    )
    the_plan = plan(spec, examples=5000, avg_tokens=600)
    with Journal() as journal:
        rec = journal.record_intent(
            "local", "local", base, spec.model_dump(mode="json"),
            estimate={"report": {"examples": 5000, "avg_tokens": 600}}, name="brand-voice",
        )  # fmt: skip
    deployer = RentedFleet()
    prepared = deployer.prepare(
        DeploySource(rec.id, job=rec), None, DeployOptions(serve=200e6, spot=True)
    )
    meta = prepared.meta
    assert meta["route"] in {o.serve for o in the_plan.offers}  # the plan's own serving route
    assert meta["cloud"] == "runpod" and meta["accelerator"] == "RTX3090"
    assert meta["min_replicas"] >= 1 and meta["max_replicas"] > meta["min_replicas"]
    assert meta["service"].startswith("tg-brand-voice-") and len(meta["service"]) <= 63
    key = "tge-round-trip-secret-0123456789"
    answer = _sky_jobs.bridge("serve_task", sky_serve.request(meta, key))
    assert key not in json.dumps(answer)
    for config in (answer["config"], answer["round_trip"]):
        service, resources = config["service"], config["resources"]
        assert service["ports"] == sky_serve.PORT and str(sky_serve.PORT) in str(resources["ports"])
        assert resources["infra"] == "runpod" and resources["use_spot"] is True
        assert service["readiness_probe"]["path"] == "/v1/models"
        assert service["readiness_probe"]["headers"] == {"Authorization": "<redacted>"}
        policy = service["replica_policy"]
        assert policy["min_replicas"] == meta["min_replicas"]
        assert policy["base_ondemand_fallback_replicas"] == 1
        mount = config["file_mounts"][f"{sky_serve.ROOT}/adapters/brand-voice"]
        assert mount["mode"] == "COPY" and mount["source"] == meta["adapter_uri"]
        assert config["envs"]["TG_SPEC_SHA"] == meta["spec_sha"]
        assert "--api-key $TG_ENGINE_KEY" in config["run"] and "--enable-lora" in config["run"]


def test_a_full_fine_tune_is_served_by_llama_cpp_and_its_task_round_trips(monkeypatch, tmp_path):
    """A full fine-tune has no adapter for vLLM: the service runs llama.cpp's server on the
    job's GGUF, built on the replica from the llama.cpp sources of the same llama-cpp-python
    release that wrote the GGUF, and the GGUF's bucket folder is copied to the replica."""
    from importlib.metadata import version

    from exporters.deploy.base import DeployOptions, DeploySource
    from exporters.deploy.rented import RentedFleet
    from providers.runners import sky_serve

    base = "meta-llama/Llama-3.1-8B-Instruct"
    spec = JobSpec.from_options(None, base=base, method="full").with_overrides(
        {"serving": {"tokens_per_day": 200_000_000}}
    )
    with Journal() as journal:
        rec = journal.record_intent("local", "local", base, spec.model_dump(mode="json"),
                                    name="full-voice")  # fmt: skip
    deployer = RentedFleet()
    source = DeploySource(rec.id, job=rec)
    assert deployer.wants_for(source, DeployOptions()) == "gguf"
    gguf = tmp_path / "full-voice-q4_k_m.gguf"
    gguf.write_bytes(b"GGUF")
    meta = deployer.prepare(
        DeploySource(rec.id, job=rec, path=gguf), None, DeployOptions(serve=200e6)
    ).meta
    assert meta["engine"] == "llamacpp" and meta["model_uri"].endswith("/model/" + gguf.name)
    assert meta["llama_cpp"] == version("llama-cpp-python") and "own_service" in meta
    answer = _sky_jobs.bridge("serve_task", sky_serve.request(meta, "tge-secret-0123456789"))
    assert "tge-secret-0123456789" not in json.dumps(answer)
    for config in (answer["config"], answer["round_trip"]):
        mount = config["file_mounts"][f"{sky_serve.ROOT}/model"]
        assert mount["source"] == meta["model_uri"].rsplit("/", 1)[0] and mount["mode"] == "COPY"
        assert f"llama-cpp-python=={meta['llama_cpp']}" in config["setup"]
        assert "-DGGML_CUDA=" in config["setup"] and "--target llama-server" in config["setup"]
        assert "/llama-server --model /tunegate/model/" + gguf.name in config["run"]
        assert "--api-key $TG_ENGINE_KEY" in config["run"] and "--n-gpu-layers 999" in config["run"]
