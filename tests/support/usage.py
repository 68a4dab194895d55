"""Journaled jobs, deployments and metered traffic for the serving tests (advice, usage, the
dashboard): a Together LoRA job deployed serverless, and usage rows planted as `tunegate serve`
would meter them."""

from __future__ import annotations

import time
import uuid

from gateway.journal import Journal
from gateway.journal.serving import ServeStore, UsageRecord
from gateway.spec import JobSpec
from tests.support.job_files import job_file

BASE = "meta-llama/Llama-3.1-8B-Instruct"
DAY = 86_400.0


def together_job(tmp_path):
    """A Together LoRA job on Llama-3.1-8B, deployed serverless (per token), guessing 2M/day."""
    spec = JobSpec.from_yaml(job_file(tmp_path, BASE, serving={"tokens_per_day": 2_000_000}))
    report = {"examples": 5000, "avg_tokens": 600.0, "p95_tokens": 1200}
    with Journal() as journal:
        job = journal.record_intent(
            "together",
            "lora",
            BASE,
            spec.model_dump(mode="json"),
            estimate={"report": report},
        )
        journal.update(job.id, state="succeeded")
        dep = journal.add_deployment(
            None,
            "together",
            "brand-voice",
            endpoint="acct/brand-voice",
            state="live",
            meta={"job": job.id},
        )
    return job.id, dep


def plant(
    dep_id: str | None, tokens_per_request: int, n: int, *, span_s: float, status=200, arm=None
):
    """`n` requests spread evenly over the last `span_s` seconds, 3/4 prompt, 1/4 generated."""
    now = time.time()
    prompt = tokens_per_request * 3 // 4
    rows = [
        UsageRecord(
            uuid.uuid4().hex,
            now - span_s + (i + 0.5) * span_s / n,
            "brand-voice",
            "chat",
            status,
            12.0,
            deployment_id=dep_id,
            target="together",
            prompt_tokens=prompt,
            completion_tokens=tokens_per_request - prompt,
            experiment_id="exp-x" if arm else None,
            arm=arm,
        )
        for i in range(n)
    ]
    with ServeStore() as store:
        store.add_usage(rows)
