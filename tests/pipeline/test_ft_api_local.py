"""OpenAI's fine-tuning API landing on this machine: the official SDK uploads data and creates a
job on `tunegate serve`, the TRL worker trains a tiny SentencePiece Llama for real, events
stream while it runs, checkpoints are listed, and the succeeded job's `fine_tuned_model` is a
GGUF served by llama.cpp that answers through the same server. A second job is cancelled."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")

import openai

from gateway.facade.deploy import get_deployment
from gateway.journal import Journal
from gateway.serve import running
from tests.support.job_files import chats, write_jsonl

pytestmark = pytest.mark.slow


def test_local_job_through_the_api(converter_cache, tiny_sp, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))  # the deploy exports a GGUF
    train = write_jsonl(tmp_path / "train.jsonl", chats(32))
    with running(ft_model=str(tiny_sp)) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        with train.open("rb") as fh:
            file = client.files.create(file=fh, purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model="local:" + str(tiny_sp),
            training_file=file.id,
            suffix="tiny",
            # one example a step: 64 steps, so training outlasts a few polls (a tiny model
            # trains 16 steps of 4 in under one poll interval, and then no poll saw it run)
            hyperparameters={"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 10},
            extra_body={"tunegate": {"lora_rank": 8, "max_seq_len": 128}},
        )
        assert job.tunegate["backend"] == "local" and job.tunegate["deploy_to"] == "llamacpp"
        running_metrics = 0  # metrics events read while the job is still training
        deadline = time.monotonic() + 600
        while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in (
            "succeeded",
            "failed",
            "cancelled",
        ):
            if job.status == "running" and job.trained_tokens is None:
                page = client.fine_tuning.jobs.list_events(job.id, limit=100)
                running_metrics = max(running_metrics, sum(e.type == "metrics" for e in page.data))
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job.status == "succeeded", job.error
        assert running_metrics > 0
        assert job.fine_tuned_model == f"ft:model:tunegate:tiny:{job.id}"
        assert job.trained_tokens and job.hyperparameters.n_epochs == 2
        # 10 x the adapter default learning rate (2e-4), recorded in the journaled spec
        with Journal() as journal:
            spec = journal.get(job.id).spec
        assert spec["training"]["learning_rate"] == pytest.approx(2e-3)
        assert "learning_rate_multiplier" in spec["_origin"]["training.learning_rate"]
        events = list(client.fine_tuning.jobs.list_events(job.id, limit=5))
        losses = [e.data["train_loss"] for e in events if e.type == "metrics"]
        assert len(losses) >= 2 and all(loss > 0 for loss in losses)
        checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
        assert checkpoints and checkpoints[0].step_number >= checkpoints[-1].step_number
        assert checkpoints[0].fine_tuned_model_checkpoint.startswith(job.fine_tuned_model)
        # the fine-tune is a verified GGUF in llama.cpp, answering under its API name
        dep = get_deployment(job.fine_tuned_model)
        assert dep.target == "llamacpp" and dep.endpoint.endswith(".gguf")
        reply = client.chat.completions.create(
            model=job.fine_tuned_model,
            messages=[{"role": "user", "content": "What does the for statement do?"}],
            max_tokens=8,
            temperature=0,
        )
        assert reply.choices[0].message.content is not None and reply.usage.completion_tokens

        # model `auto` takes the server's default base; this one is cancelled while it runs
        second = client.fine_tuning.jobs.create(
            model="auto",
            training_file=file.id,
            hyperparameters={"n_epochs": 20},
            extra_body={"tunegate": {"backend": "local", "max_seq_len": 128}},
        )
        cancelled = client.fine_tuning.jobs.cancel(second.id)
        deadline = time.monotonic() + 60
        while cancelled.status != "cancelled":
            assert time.monotonic() < deadline, cancelled
            time.sleep(0.5)
            cancelled = client.fine_tuning.jobs.retrieve(second.id)
        assert cancelled.fine_tuned_model is None and cancelled.model == "auto"
