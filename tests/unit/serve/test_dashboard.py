"""The dashboard without a browser: what each page is built from, the action rules (form
token, and a key from other machines), and the vendored files' hashes. The browser tests are
tests/pipeline/test_ui.py."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest

from gateway.journal import EventRecord, Journal
from gateway.journal.serving import ServeStore
from gateway.serve.dashboard.plan import job_files
from gateway.serve.dashboard.views import actions, points
from tests.support.usage import DAY, plant

ROOT = Path(__file__).resolve().parents[3]
STATIC = ROOT / "gateway" / "serve" / "dashboard" / "static"


@pytest.fixture
def web():
    """The serve extra's web stack (the tests that render pages need it; the rest do not)."""
    pytest.importorskip("jinja2")
    starlette = pytest.importorskip("starlette.testclient")
    from gateway.serve.app import Gateway

    return Gateway, starlette.TestClient


def test_vendored_files_match_the_hashes_in_the_docs():
    table = (ROOT / "docs" / "ui.md").read_text()
    listed = dict(re.findall(r"\| `([\w.]+)` \| npm .*? \| `([0-9a-f]{64})` \|", table))
    assert set(listed) == {"htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css"}
    for name, digest in listed.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name


def _ev(i: int, step: int | None, **data) -> EventRecord:
    return EventRecord(i, "tg-x", float(i), "remote", "m", step, data or None)


def test_points_merge_a_steps_losses_and_skip_other_events():
    events = [
        _ev(1, None, level="info"),
        _ev(2, 10, loss=2.0),
        _ev(3, 10, eval_loss=2.5),
        _ev(4, 5, loss=3.0),
        _ev(5, 20, total_steps=40),
    ]
    assert points(events) == [[5.0, 3.0, None], [10.0, 2.0, 2.5]]


def _job(journal: Journal, state: str, provider: str = "local"):
    rec = journal.record_intent(provider, "sft", "tiny", {"base_model": "tiny"}, name="n")
    return journal.update(rec.id, state=state) if state != "pending" else rec


@pytest.mark.parametrize(
    ("state", "provider", "expected"),
    [
        ("running", "local", ["cancel"]),
        ("running", "together", ["cancel"]),
        ("failed", "local", ["resume"]),
        ("cancelled", "together", []),  # hosted jobs are launched again, not resumed
        ("succeeded", "local", ["export", "deploy"]),
    ],
)
def test_actions_follow_the_jobs_state(state, provider, expected):
    with Journal() as journal:
        rec = _job(journal, state, provider)
        found = actions(rec, journal)
    assert [a["name"] for a in found] == expected
    for a in found:
        assert a["command"].startswith(f"tunegate {a['name']} {rec.id}")
    if provider == "together" and state == "running":
        assert "bill" in found[0]["costs"]


def test_job_files_are_yaml_files_that_name_a_base_model(tmp_path):
    (tmp_path / "a.yaml").write_text("base_model: x\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text("name: y\nbase_model: z\n")
    (tmp_path / "other.yaml").write_text("something: else\n")
    assert job_files(tmp_path) == ["a.yaml", "sub/b.yml"]


def test_pages_and_the_action_rules(tmp_path, web):
    """TestClient's requests come from `testclient`, not loopback: actions need a key."""
    (tmp_path / "job.yaml").write_text("base_model: meta-llama/Llama-3.1-8B-Instruct\n")
    with Journal() as journal:
        rec = _job(journal, "running", "together")
    with ServeStore() as store:
        _, secret = store.create_key("ops")
    Gateway, TestClient = web
    gw = Gateway(ui_folder=tmp_path)
    with TestClient(gw.app()) as client:
        assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
        page = client.get("/ui/").text
        assert rec.id in page and "read-only: actions need the server" in page
        job = client.get(f"/ui/jobs/{rec.id}").text
        assert 'name="key"' in job  # the dialog asks for the key off loopback
        csrf = re.search(r'name="csrf" value="([^"]+)"', job).group(1)
        assert client.get("/ui/jobs/tg-nope").status_code == 404
        # no token, a forged token, or no key: refused, and nothing happened
        for form in ({}, {"csrf": "x", "key": secret}, {"csrf": csrf}, {"csrf": csrf, "key": "no"}):
            res = client.post(f"/ui/jobs/{rec.id}/cancel", data=form, follow_redirects=False)
            assert res.status_code == 403, form
        with Journal() as journal:
            assert journal.get(rec.id).state == "running"
        half = client.get("/ui/plan", params={"file": "job.yaml", "examples": "100"}).text
        assert "give both --examples and --avg-tokens" in half  # the planner's own message
        numbers = {"file": "job.yaml", "examples": "100", "avg_tokens": "500", "serve": "2M"}
        plan = client.get("/ui/plan", params=numbers).text
        assert 'id="breakeven"' in plan and 'id="cost-data"' in plan
        assert "tunegate plan job.yaml --examples 100 --avg-tokens 500 --serve 2M" in plan
        outside = client.get("/ui/plan", params={"file": "../../etc/passwd"}).text
        assert "not a job file in" in outside
        data = client.get("/ui/data", params={"file": "../job.yaml"}).text
        assert "not a file in" in data
        assert client.get("/ui/evals/ev-none/report.md").status_code == 404
        assert client.get("/ui/evals/x/../../journal.db").status_code == 404
        assert client.get("/ui/static/uPlot.iife.min.js").status_code == 200
        assert client.get("/ui/deployments").status_code == 200


def test_data_page_marks_trained_tokens_and_long_bins(tmp_path):
    pytest.importorskip("transformers")
    from gateway.serve.dashboard.plan import data_page
    from tests.support.job_files import chats, write_jsonl
    from tests.support.tiny_models import tiny_chatml_tokenizer

    tok = tiny_chatml_tokenizer(tmp_path / "tok")
    rows = chats(40)  # short ones; the long one below is past p95, so its bin is over
    rows.append({"messages": [{"role": "user", "content": "hello " * 300}, {"role": "assistant", "content": "hi"}]})  # fmt: skip
    rows.append(rows[0])  # an exact duplicate
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    page = data_page(
        train, base=str(tok), eval_path=write_jsonl(tmp_path / "ev.jsonl", rows[40:41])
    )
    assert page["n_examples"] == 42 and not page["tokens"]["approximate"]
    assert page["exact"] == [[1, 42]] and page["contamination"]
    assert any(b["over"] for b in page["hist"]) and not page["hist"][0]["over"]
    assert page["samples"]
    trained = ["".join(t for t, on in s["pieces"] if on) for s in page["samples"]]
    assert all("drill" in t and "<|im_end|>" in t for t in trained)  # the answer and its end
    assert all("Can I borrow" not in t for t in trained)  # the prompt is context, not trained


def test_plan_and_traffic_pages_mark_measured_volume(together_job, tmp_path, web):
    job_id, dep = together_job
    plant(dep, 1000, 70, span_s=7 * DAY)  # 10k tokens/day over the week
    Gateway, TestClient = web
    gw = Gateway(ui_folder=tmp_path)
    with TestClient(gw.app()) as client:
        page = client.get("/ui/plan", params={"job": job_id}).text
        data = json.loads(re.search(r'id="cost-data">(.*?)</script>', page, re.S).group(1))
        measured = {m["label"]: m["x"] for m in data["marks"]}["measured"]
        assert measured == pytest.approx(10_000, rel=0.02)
        assert f"tunegate plan {job_id}" in page
        traffic = client.get("/ui/deployments").text
        assert "brand-voice" in traffic and "10k" in traffic  # tokens/day of the deployment
        assert "stays the cheapest" in traffic  # the advice at measured volume
        for _ in range(40):  # this gateway's heartbeat lists it among the replicas
            if gw.upkeep.id in traffic:
                break
            time.sleep(0.05)
            traffic = client.get("/ui/deployments").text
        assert gw.upkeep.id in traffic and "Gateway replicas" in traffic


def test_the_deployments_page_shows_a_shared_rented_service_and_why_a_replica_failed(tmp_path, web):
    """What `tunegate deployments` last heard from SkyServe, without asking it again: the
    service's members, the replicas alive, the cost so far, and a failed replica's reason."""
    members = [{"name": "voice", "uri": "s3://b/a", "rank": 8}, {"name": "legal", "uri": "s3://b/c", "rank": 8}]  # fmt: skip
    meta = {"service": "tg-voice-0123456789", "engine": "vllm", "members": members,
            "min_replicas": 2, "replicas_alive": 1, "accrued_usd": 1.25,
            "replica_states": [{"replica_id": 1, "status": "PROVISIONING"},
                               {"replica_id": 2, "status": "FAILED_PROVISION",
                                "reason": "RuntimeError: no T4 capacity in us-east-1"}]}  # fmt: skip
    with Journal() as journal:
        for name in ("voice", "legal"):
            journal.add_deployment(None, "rented", name, endpoint="http://10.0.0.1:30001",
                                   state="live", meta=meta)  # fmt: skip
    Gateway, TestClient = web
    with TestClient(Gateway(ui_folder=tmp_path).app()) as client:
        page = client.get("/ui/deployments").text
    assert page.count("vllm, shared by 2 fine-tunes") == 2
    assert "1 replica(s) alive, $1.25 so far" in page
    assert "replica 2 FAILED_PROVISION: RuntimeError: no T4 capacity in us-east-1" in page
