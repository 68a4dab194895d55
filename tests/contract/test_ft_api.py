"""OpenAI's fine-tuning API served by `tunegate serve`, driven by the official `openai` SDK, with
jobs landing on the OpenAI fake (a hosted backend): files, create, retrieve until the model is
deployed and answers, events and list pagination over several pages, cancel, refusals by name,
bad data as a 400 with the line, and a create whose answer is lost made once."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("python_multipart")

import openai

from gateway.journal import Journal
from gateway.serve import running
from tests.fakes.lossy_proxy import LossyProxy
from tests.support.job_files import chats, write_jsonl


@pytest.fixture
def api(monkeypatch, tmp_path):
    """(the SDK client on tunegate serve, the OpenAI fake behind it, a training file path)."""
    from tests.fakes.openai_api import OpenAIFake

    with OpenAIFake() as fake:
        fake.env(monkeypatch)
        train = write_jsonl(tmp_path / "train.jsonl", chats(12))
        with running() as url:
            yield openai.OpenAI(base_url=url, api_key="x", max_retries=0), fake, train, url


def _until_done(client: openai.OpenAI, job_id: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_the_whole_lifecycle_on_a_hosted_backend(api):
    client, fake, train, _ = api
    with train.open("rb") as fh:
        file = client.files.create(file=fh, purpose="fine-tune")
    assert file.status == "processed" and file.bytes == train.stat().st_size
    assert client.files.wait_for_processing(file.id).status == "processed"
    assert client.files.content(file.id).read() == train.read_bytes()  # kept as uploaded
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=file.id,
        suffix="brand",
        hyperparameters={"n_epochs": 2},
        metadata={"team": "support"},
    )
    assert job.status in ("validating_files", "queued", "running") and job.fine_tuned_model is None
    assert job.id.startswith("tg-") and job.hyperparameters.n_epochs == 2
    assert len(fake.jobs) == 1  # launched on the hosted backend, once
    done = _until_done(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:gpt-4o-mini:tunegate:brand:{job.id}"
    assert done.metadata == {"team": "support"} and done.finished_at
    # the fine-tuned model answers through the same server: only base_url changed
    reply = client.chat.completions.create(
        model=done.fine_tuned_model, messages=[{"role": "user", "content": "hello there"}]
    )
    remote = next(iter(fake.jobs.values()))["fine_tuned_model"]
    assert reply.choices[0].message.content == f"[{remote}] ereht olleh"
    # events: newest first, through pages of 2 that end
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=2))
    with Journal() as journal:
        assert len(events) == len(journal.events(job.id)) > 4
    assert events[0].created_at >= events[-1].created_at
    metrics = [e for e in events if e.type == "metrics"]
    assert metrics and all(e.data["train_loss"] > 0 and e.data["step"] for e in metrics)
    # the metrics CSV is the result file
    (result,) = done.result_files
    assert client.files.content(result).read().decode().startswith("step,train_loss")
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data == []  # hosted: none kept here


def test_jobs_list_pages_and_filters(api):
    client, _, train, _ = api
    with train.open("rb") as fh:
        file = client.files.create(file=fh, purpose="fine-tune")
    made = [
        client.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=file.id, suffix=f"s{i}", metadata={"i": str(i)}
        ).id
        for i in range(5)
    ]
    first = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in first.data] == made[::-1][:2] and first.has_more
    every = [j.id for j in client.fine_tuning.jobs.list(limit=2)]  # the SDK follows `after`
    assert every == made[::-1]
    only = client.fine_tuning.jobs.list(metadata={"i": "3"})
    assert [j.id for j in only.data] == [made[3]]
    cancelled = client.fine_tuning.jobs.cancel(made[0])
    assert cancelled.status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="already cancelled"):
        client.fine_tuning.jobs.cancel(made[0])


def test_refusals_name_what_is_not_supported(api, tmp_path):
    client, fake, train, _ = api
    with train.open("rb") as fh:
        file = client.files.create(file=fh, purpose="fine-tune")
    cases = [
        ({"method": {"type": "reinforcement"}}, "method.type", "GRPO"),
        (
            {"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]},
            "integrations",
            "Weights",
        ),
        ({"hyperparameters": {"n_epochs": 2, "warmup": 3}}, "hyperparameters.warmup", "warmup"),
        ({"extra_body": {"tunegate": {"gpus": 8}}}, "tunegate.gpus", "known:"),
        ({"extra_body": {"top_k": 3}}, "top_k", "not supported"),
        ({"suffix": "x" * 65}, "suffix", "64"),
    ]
    for extra, param, text in cases:
        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file.id, **extra)
        assert err.value.param == param and text in err.value.message, (param, err.value.message)
    with pytest.raises(openai.NotFoundError) as err:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-nope")
    assert err.value.code == "file_not_found"
    with pytest.raises(openai.BadRequestError, match="auto"):
        client.fine_tuning.jobs.create(model="auto", training_file=file.id)
    # bad data: the upload says which lines, and a create with it is refused with them
    bad = tmp_path / "bad.jsonl"
    rows = [json.dumps(r) for r in chats(3)]
    rows[1] = json.dumps({"messages": [{"role": "user", "content": "no answer"}]})
    bad.write_text("\n".join(rows) + "\n{not json\n")
    with bad.open("rb") as fh:
        broken = client.files.create(file=fh, purpose="fine-tune")
    assert broken.status == "error" and "line 2" in broken.status_details
    assert "line 4" in broken.status_details
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=broken.id)
    assert err.value.code == "invalid_training_file" and err.value.param == "training_file"
    assert "line 2" in err.value.message
    # DPO on chat data: the kinds are checked for the method before anything is spent
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=file.id, method={"type": "dpo"}
        )
    assert err.value.code == "invalid_training_file" and "line 1" in err.value.message
    assert not fake.jobs  # nothing was launched by any of these
    with pytest.raises(openai.BadRequestError, match="fine-tune"):
        client.files.create(file=("x.jsonl", b"{}"), purpose="batch")


def test_a_lost_answer_retried_by_the_sdk_makes_one_job(api):
    client, fake, train, url = api
    with train.open("rb") as fh:
        file = client.files.create(file=fh, purpose="fine-tune")
    base = url.removesuffix("/v1")
    with LossyProxy(base, "POST", "/v1/fine_tuning/jobs") as proxy:
        lossy = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=2)
        job = lossy.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file.id)
        assert proxy.forwarded.count("POST /v1/fine_tuning/jobs") == 2  # the SDK retried
    assert len(fake.jobs) == 1
    with Journal() as journal:
        assert [j.id for j in journal.jobs()] == [job.id]
    # a deliberate second create (a first attempt, not a retry) is a new job
    again = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file.id)
    assert again.id != job.id and len(fake.jobs) == 2
    # an Idempotency-Key names a create: the same key returns the same job
    keyed = [
        client.fine_tuning.jobs.create(
            model="gpt-4o-mini",
            training_file=file.id,
            suffix="k",
            extra_headers={"Idempotency-Key": "deploy-42"},
        ).id
        for _ in range(2)
    ]
    assert keyed[0] == keyed[1] and len(fake.jobs) == 3


def test_past_openais_cutoff_the_create_is_refused_with_the_date(api, monkeypatch):
    client, fake, train, _ = api
    with train.open("rb") as fh:
        file = client.files.create(file=fh, purpose="fine-tune")
    monkeypatch.setenv("TUNEGATE_TODAY", "2027-01-06")
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="openai:gpt-4o-mini", training_file=file.id)
    assert err.value.code == "launch_refused"
    assert "no new fine-tuning jobs from 2027-01-06" in err.value.message
    assert "cheapest open alternative" in err.value.message
    assert not fake.jobs
    with Journal() as journal:
        assert journal.jobs() == []  # refused before anything was journaled or spent
