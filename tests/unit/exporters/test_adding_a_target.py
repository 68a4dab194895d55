"""A deploy target added by the documented steps (one module, one line in
`exporters.deploy.DEPLOYERS`) is priced in `tunegate usage`, offered in the dashboard's deploy
form, and priced in the plan's advice at measured volume, with no other file edited: every
consumer reads the registry and asks the target (`hosts`, `price`), none switches on a name."""

from __future__ import annotations

import time
import uuid

import pytest

import exporters.deploy as registry
from exporters.deploy.base import Prepared, Upstream
from gateway.cost.deployments import per_token_price
from gateway.facade.advice import advise_one, measured
from gateway.journal import Journal
from gateway.journal.deployments import ChatReply, deployments
from gateway.journal.serving import ServeStore, UsageRecord
from gateway.serve.dashboard.views import actions
from gateway.serve.usage import usage

NAME = "acme-serve"
BASE = "meta-llama/Llama-3.1-8B-Instruct"


class AcmeServing:
    """A throwaway hosted target: per-token serving at $0.40 in / $1.20 out per 1M tokens."""

    target, wants, hosts, options = NAME, "job", "hosted", frozenset()

    def accepts(self, src):
        return None

    def prepare(self, src, name, options):
        return Prepared(name or "acme-model", {}, endpoint="acme://model", remote=False)

    def deploy(self, prepared):
        return {}

    def undeploy(self, dep):
        return None

    def chat(self, dep, messages, max_tokens):
        return ChatReply("hello", "stop", dep.id)

    def upstream(self, dep):
        return Upstream("http", dep.name, base_url="http://127.0.0.1:9/v1")

    def price(self, dep, base, catalog):
        return per_token_price("Acme serverless", 0.40, 1.20, "a throwaway test target")


@pytest.fixture
def acme(monkeypatch):
    monkeypatch.setitem(registry.DEPLOYERS, NAME, f"{__name__}:AcmeServing")


def _succeeded_job(journal: Journal):
    rec = journal.record_intent("together", "lora", BASE, {"base_model": BASE}, name="voice")
    return journal.update(rec.id, state="succeeded")


def test_a_new_target_is_priced_in_usage_offered_in_the_dashboard_and_advised(acme):
    with Journal() as journal:
        job = _succeeded_job(journal)
        dep_id = journal.add_deployment(
            None, NAME, "voice", endpoint="acme://model", state="live", meta={"job": job.id}
        )
        # the dashboard's deploy form offers it, among the hosted targets
        (deploy_form,) = [a for a in actions(job, journal) if a["name"] == "deploy"]
        assert NAME in deploy_form["fields"][0]["choices"]
        assert NAME in deploy_form["costs"].split("local ones")[0]  # named as hosted
    now = time.time()
    rows = [
        UsageRecord(uuid.uuid4().hex, now - 3600 + i, "voice", "chat", 200, 10.0,
                    deployment_id=dep_id, target=NAME, prompt_tokens=750, completion_tokens=250)
        for i in range(20)
    ]  # fmt: skip
    with ServeStore() as store:
        store.add_usage(rows)
        volume = measured(store, [dep_id], window_days=7)
    # tunegate usage prices it through the target
    (row,) = usage().rows
    assert row.id == dep_id and row.target == NAME and row.price == "Acme serverless"
    # the plan's advice at measured volume prices it the same way
    with Journal() as journal:
        (dep,) = [d for d in deployments(journal) if d.id == dep_id]
        advice = advise_one(dep, journal, volume)
    assert advice.current == "Acme serverless"
    per_day = volume.tokens_per_day
    expected = per_day * 30.4 * (0.75 * 0.40 + 0.25 * 1.20) / 1e6
    assert advice.current_usd_month == pytest.approx(expected, rel=0.05)
    assert "Acme serverless" in advice.message
