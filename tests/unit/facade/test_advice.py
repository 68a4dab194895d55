"""The break-even monitor at measured volume: tokens/day from the usage rows, the job re-priced on
every serving route, advice only past the threshold, and `tunegate plan JOB-ID` using the
measured volume instead of the job's guess."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from cli.main import main
from gateway.facade.advice import advise, advise_one, group_peers, measured, plan_job, spec_at
from gateway.journal import Journal
from gateway.journal.serving import ServeStore
from tests.support.usage import BASE, DAY, plant


def test_measured_volume_is_tokens_per_day_over_the_window(together_job):
    _, dep = together_job
    plant(dep, 1000, 70, span_s=7 * DAY)
    plant(dep, 5000, 10, span_s=DAY, status=502)  # failed requests are not volume
    plant(dep, 5000, 10, span_s=DAY, arm="shadow")  # nor A/B shadow copies: no one's demand
    with ServeStore() as store:
        week = measured(store, [dep], window_days=7)
        recent = measured(store, [dep], window_days=2)
        assert measured(store, ["dep-other"], window_days=7) is None
    assert week.requests == 70 and week.days == pytest.approx(7, rel=0.01)
    assert week.tokens_per_day == pytest.approx(10_000, rel=0.02)
    assert week.output_share == pytest.approx(0.25)
    # a window shorter than the traffic counts only its own days
    assert recent.days == pytest.approx(2, rel=0.05) and recent.requests in (19, 20, 21)


def test_one_burst_is_not_a_day(together_job):
    _, dep = together_job
    plant(dep, 1000, 5, span_s=60)  # five requests in a minute
    with ServeStore() as store:
        volume = measured(store, [dep], window_days=7)
    assert volume.days == pytest.approx(1 / 24)  # the floor: one hour
    assert volume.tokens_per_day == pytest.approx(5000 * 24)


def test_heavy_traffic_is_advised_off_per_token_serving(together_job):
    job_id, dep = together_job
    plant(dep, 800_000, 1008, span_s=7 * DAY)  # ~115M tokens/day
    (advice,) = advise()
    assert advice.job_id == job_id and advice.cheaper
    assert advice.best_usd_month < advice.current_usd_month * 0.8
    assert advice.command.startswith(f"tunegate deploy {job_id} --to ")
    assert "--to together" not in advice.command  # another route, not the one it is on
    assert "at the measured 115" in advice.message and "instead of" in advice.message


def test_light_traffic_stays_where_it_is(together_job):
    _, dep = together_job
    plant(dep, 1000, 70, span_s=7 * DAY)  # 10k tokens/day: serverless is cheapest
    (advice,) = advise()
    assert not advice.cheaper and "stays the cheapest" in advice.message
    assert advice.current_usd_month < 1.0


def test_the_threshold_decides(together_job):
    _, dep = together_job
    plant(dep, 800_000, 1008, span_s=7 * DAY)
    with Journal() as journal, ServeStore() as store:
        volume = measured(store, [dep], window_days=7)
        record = next(d for d in _deployments(journal) if d.id == dep)
        loose = advise_one(record, journal, volume, threshold=0.0)
        strict = advise_one(record, journal, volume, threshold=0.99)
    assert loose.cheaper and not strict.cheaper
    assert loose.best_usd_month == strict.best_usd_month


def _deployments(journal):
    from gateway.journal.deployments import deployments

    return deployments(journal)


def test_spec_at_drops_training_limits_only_when_asked(together_job):
    job_id, _ = together_job
    with Journal() as journal:
        job = journal.get(job_id)
    data = dict(job.spec)
    data["constraints"] = {**(data.get("constraints") or {}), "max_usd": 0.01}
    job = dataclasses.replace(job, spec=data)
    from gateway.facade.advice import Volume

    volume = Volume(5e6, 0.3, 7, 100)
    served = spec_at(job, volume)
    assert served.serving.tokens_per_day == 5_000_000 and served.serving.output_share == 0.3
    assert served.constraints.max_usd is None  # the job is trained: its budget no longer binds
    assert spec_at(job, None, training_limits=True).constraints.max_usd == 0.01


def test_plan_job_uses_measured_volume_not_the_guess(together_job):
    job_id, dep = together_job
    unmeasured = plan_job(job_id)
    assert unmeasured.volume is None and unmeasured.guessed_tokens_per_day == 2_000_000
    plant(dep, 800_000, 1008, span_s=7 * DAY)
    result = plan_job(job_id)
    assert result.volume.tokens_per_day == pytest.approx(115.2e6, rel=0.01)
    assert result.plan.spec.serving.tokens_per_day == round(result.volume.tokens_per_day)
    assert [a.deployment_id for a in result.advice] == [dep]
    # serving 115M tokens/day costs more than 2M/day on every route the plan keeps
    before = {o.provider: o.serve_usd_month.likely for o in unmeasured.plan.feasible if o.serve}
    after = {o.provider: o.serve_usd_month.likely for o in result.plan.feasible if o.serve}
    together = [p for p in after if p == "together"]
    assert together and after["together"] > before["together"]


def test_cli_plan_job_id(together_job):
    job_id, dep = together_job
    plant(dep, 800_000, 1008, span_s=7 * DAY)
    runner = CliRunner()
    res = runner.invoke(main, ["plan", job_id])
    assert res.exit_code == 0, res.output
    assert "serving volume: measured 115" in res.output and "guessed 2M/day" in res.output
    assert "cheaper: at the measured" in res.output
    res = runner.invoke(main, ["plan", job_id, "--json"])
    data = json.loads(res.output)
    assert data["job"] == job_id and data["measured"]["requests"] == 1008
    assert data["advice"][0]["cheaper"] is True
    res = runner.invoke(main, ["plan", job_id, "--serve", "2M/day", "--json"])
    assert res.exit_code == 0, res.output  # serving what-ifs apply to a journaled job
    data = json.loads(res.output)
    assert data["spec"]["serving"]["tokens_per_day"] == 2_000_000
    res = runner.invoke(main, ["plan", job_id, "--rank", "8"])
    assert res.exit_code != 0 and "--rank cannot be combined with a journaled job" in res.output
    res = runner.invoke(main, ["plan", "tg-nosuchjob"])
    assert res.exit_code != 0 and "neither a job file nor a job in the journal" in res.output
    assert "Traceback" not in res.output


def test_plan_job_id_prices_the_fleet_its_engine_group_shares(together_job):
    """A job deployed in an engine group is planned beside the group's other live fine-tunes,
    at the volume `tunegate serve` measured for each (its own where none was measured)."""
    job_id, _ = together_job
    with Journal() as journal:
        other = journal.record_intent("local", "lora", BASE, {"base_model": BASE})
        journal.add_deployment(
            None, "llamacpp", "mine", state="live", meta={"job": job_id, "group": "g1"}
        )
        peer = journal.add_deployment(
            None, "llamacpp", "peer", state="live", meta={"job": other.id, "group": "g1"}
        )
        journal.add_deployment(
            None, "llamacpp", "base", state="live", meta={"group": "g1", "member": "base"}
        )
        journal.add_deployment(None, "llamacpp", "quiet", state="live", meta={"group": "g1"})
    plant(peer, 100_000, 70, span_s=7 * DAY)  # 1M tokens/day
    volumes, source = group_peers(job_id, 2_000_000, None, 30)
    assert sorted(volumes) == [pytest.approx(1e6, rel=0.01), 2_000_000]  # "quiet": unmeasured
    assert source == "1 of 2 sharing fine-tunes measured by tunegate serve"
    result = plan_job(job_id)
    assert result.plan.sharing.adapters == 3
    assert result.plan.sharing.volume_source == source


def test_a_rented_fleet_that_stays_on_for_little_traffic_is_told_what_scaling_to_zero_saves(
    together_job, monkeypatch
):
    """A rented fleet (2 x RTX 3090 on RunPod, always on) that measured 100k tokens/day: its
    hours are its cost, and the advice says what scaling to zero between requests would save
    at that traffic, with the command."""
    from exporters.deploy.base import DeployOptions, DeploySource
    from exporters.deploy.rented import RentedFleet

    job_id, _ = together_job
    monkeypatch.setenv("TUNEGATE_SKYPILOT_BUCKET", "s3://fleet-bucket/jobs")
    with Journal() as journal:
        job = journal.get(job_id)
        meta = (
            RentedFleet()
            .prepare(DeploySource(job_id, job=job), "fleet", DeployOptions(serve=200e6))
            .meta
        )
        dep = journal.add_deployment(
            None, "rented", "fleet", endpoint="http://127.0.0.1:9", state="live", meta=meta
        )
    plant(dep, 1000, 100, span_s=DAY)  # 100k tokens/day
    (advice,) = [a for a in advise() if a.deployment_id == dep]
    assert "scale to zero would save $" in advice.message, advice.message
    assert f"tunegate deploy {job_id} --to rented --scale-to-zero" in advice.message
    assert advice.current_usd_month and advice.current_usd_month > 100  # always on: its hours
