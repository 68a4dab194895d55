"""`--to rented`: which service a fine-tune joins, how the shared fleet is sized and priced,
and the engine command each replica runs. Local decisions only (no SkyPilot call is made
before `deploy`); the services themselves are tests/pipeline/test_rented_serving.py."""

from __future__ import annotations

import json
import shlex

import pytest

from exporters.deploy import rented_service
from exporters.deploy.base import DeployOptions, DeploySource
from exporters.deploy.rented import RentedFleet
from gateway.catalog import load_catalog
from gateway.errors import DeployError
from gateway.journal import Journal
from gateway.journal.deployments import deployments
from gateway.spec.job import JobSpec
from providers.runners import sky_serve

BASE = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(autouse=True)
def bucket(monkeypatch):
    monkeypatch.setenv("TUNEGATE_SKYPILOT_BUCKET", "s3://tg-serving/jobs")


def _job(journal: Journal, name: str, per_day: float = 20e6, method: str = "lora"):
    spec = JobSpec.from_options(None, base=BASE, method=method).with_overrides(
        {"serving": {"tokens_per_day": per_day}}
    )
    return journal.record_intent("local", "local", BASE, spec.model_dump(mode="json"), name=name)


def _deployed(journal: Journal, job, **options):
    """Prepare `job` as the facade would (the target's live deployments as peers), and journal
    it live as a deploy that reached SkyServe would."""
    peers = tuple(d for d in deployments(journal) if d.target == "rented")
    prepared = RentedFleet().prepare(DeploySource(job.id, job=job, peers=peers), None,
                                     DeployOptions(**options))  # fmt: skip
    dep = journal.add_deployment(None, "rented", prepared.name, state="live", meta=prepared.meta)
    return next(d for d in deployments(journal) if d.id == dep)


def test_lora_fine_tunes_of_one_base_share_one_service_and_split_its_cost():
    catalog = load_catalog()
    with Journal() as journal:
        first = _deployed(journal, _job(journal, "voice"))
        assert "no live rented service" in first.meta["own_service"]
        second = _deployed(journal, _job(journal, "legal"))
    assert second.meta["service"] == first.meta["service"]
    assert [m["name"] for m in second.meta["members"]] == ["voice", "legal"]
    assert second.meta["total_tokens_per_day"] == 40e6 and "own_service" not in second.meta
    # one engine per replica holds both adapters, each copied from its bucket folder
    argv = shlex.split(sky_serve.run_command(second.meta))
    assert argv[argv.index("--max-loras") + 1] == "2"
    modules = [json.loads(a) for a in argv[argv.index("--lora-modules") + 1 :]]
    assert [m["name"] for m in modules] == ["voice", "legal"]
    assert {m["path"] for m in modules} == {"/tunegate/adapters/voice", "/tunegate/adapters/legal"}
    mounts = sky_serve.request(second.meta, None)["file_mounts"]
    assert mounts["/tunegate/adapters/voice"]["source"] == first.meta["adapter_uri"]
    # each is priced at its share (its traffic over the service's): they add up to the fleet
    deployer = RentedFleet()
    synced = rented_service.synced(first, second.meta)
    prices = [deployer.price(d, BASE, catalog) for d in (first.__class__(**{**first.__dict__,
              "meta": synced}), second)]  # fmt: skip
    fleet = second.meta["min_replicas"] * second.meta["gpus"] * second.meta["usd_per_gpu_hour"]
    assert sum(p.usd_per_hour for p in prices) == pytest.approx(fleet)
    assert prices[1].usd_per_hour == pytest.approx(fleet / 2) and "50% of" in prices[1].label
    # one fleet for both costs no more than a fleet each, and scale-to-zero advice is for
    # services with one member (one member's traffic is not the fleet's)
    assert second.meta["plan_usd_month"] <= 2 * first.meta["plan_usd_month"]
    assert deployer.scaled_to_zero_usd_month(second, 1e6, 0.25, catalog) is None


def test_a_fine_tune_on_other_terms_gets_a_service_of_its_own_with_the_reason():
    with Journal() as journal:
        first = _deployed(journal, _job(journal, "voice"))
        spot = _deployed(journal, _job(journal, "cheap"), spot=True)
        assert spot.meta["service"] != first.meta["service"]
        assert "differs in spot" in spot.meta["own_service"]
        with pytest.raises(DeployError, match="cannot join a rented service"):
            _deployed(journal, _job(journal, "insist"), scale_to_zero=True, engine="shared")
        alone = _deployed(journal, _job(journal, "alone"), engine="own")
        # at 200M tokens/day more, one fleet for both would need more replicas than two
        busy = _deployed(journal, _job(journal, "busy", per_day=200e6))
    assert alone.meta["service"] not in (first.meta["service"], spot.meta["service"])
    assert alone.meta["own_service"] == "--engine own"
    assert busy.meta["service"] != first.meta["service"]
    assert "/month with it" in busy.meta["own_service"]


def test_redeploying_a_member_unchanged_keeps_its_service_and_spec():
    with Journal() as journal:
        _deployed(journal, _job(journal, "voice"))
        job = _job(journal, "legal")
        member = _deployed(journal, job)
        peers = tuple(d for d in deployments(journal) if d.target == "rented")
        again = RentedFleet().prepare(
            DeploySource(job.id, job=job, peers=peers, same=member), None, DeployOptions()
        )
    assert again.meta["service"] == member.meta["service"]
    assert again.meta["spec_sha"] == member.meta["spec_sha"]  # adopted, not updated


def test_a_full_fine_tune_is_served_from_its_gguf_by_llama_cpp(tmp_path):
    with Journal() as journal:
        job = _job(journal, "full", method="full")
    deployer = RentedFleet()
    assert deployer.wants_for(DeploySource(job.id, job=job), DeployOptions()) == "gguf"
    assert "no LoRA adapter or GGUF" in str(deployer.accepts(DeploySource(job.id, job=job)))
    gguf = tmp_path / "full-q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    meta = deployer.prepare(DeploySource(job.id, job=job, path=gguf), None, DeployOptions()).meta
    argv = sky_serve.engine_argv(meta, root="/srv", host="127.0.0.1", port=9, binary="server")
    assert argv[:3] == ["server", "--model", "/srv/model/full-q8_0.gguf"]
    assert argv[argv.index("--api-key") + 1] == sky_serve.KEY_VAR and "--alias" in argv
    assert sky_serve.run_command(meta).startswith("$HOME/tunegate-llama/llama-server ")


def test_a_failed_replicas_reason_is_the_line_of_its_log_that_says_what_went_wrong():
    """SkyServe 0.14.1 keeps no failure reason in its status, only in the replica's log:
    tests/fixtures/sky_logs/failed_provision.log is `sky.serve.tail_logs` of a replica that
    failed to provision on the local API server (moto; its paths shortened)."""
    from pathlib import Path

    from providers.runners.sky_bridge import FAILED, reason_from_log

    log = (Path(__file__).parents[2] / "fixtures/sky_logs/failed_provision.log").read_text()
    assert reason_from_log(log) == "RuntimeError: Failed to build pip wheel for SkyPilot."
    assert reason_from_log("\x1b[31mERROR: quota exceeded for g5\x1b[0m\nbye") == (
        "ERROR: quota exceeded for g5"
    )
    assert reason_from_log("all fine\n") == "" and "readiness probe" in FAILED["FAILED_PROBING"]
