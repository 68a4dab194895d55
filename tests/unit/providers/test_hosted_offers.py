"""What the hosted offers refuse or adjust before anything is launched (no SDK needed)."""

from __future__ import annotations

from gateway.spec import JobSpec
from tests.fakes.bedrock_api import BUCKET, ROLE
from tests.support.job_files import job_file

BASE = "meta-llama/Llama-3.1-8B-Instruct"


def test_plan_maps_and_checks_hyperparameters(tmp_path, monkeypatch):
    from gateway.facade.plan import plan

    spec = JobSpec.from_yaml(job_file(tmp_path, BASE, n=40))
    (offer,) = [o for o in plan(spec).offers if o.provider == "bedrock"]
    assert offer.feasible
    # the preset's batch size 2 is clamped to Bedrock's fixed 1, and said so
    assert any("training.batch_size 2 sent as batchSize 1" in n for n in offer.notes)
    assert "needs bedrock.role_arn (an IAM role) in the tunegate config to launch" in offer.needs
    monkeypatch.setenv("TUNEGATE_BEDROCK_ROLE_ARN", ROLE)
    monkeypatch.setenv("TUNEGATE_BEDROCK_S3_URI", f"s3://{BUCKET}/x")
    spec = JobSpec.from_yaml(
        job_file(tmp_path, BASE, n=40, training={"batch_size": 8, "learning_rate": 2e-5})
    )
    (offer,) = [o for o in plan(spec).offers if o.provider == "bedrock"]
    assert not offer.feasible and "batchSize 1-1" in offer.reason
    assert not [n for n in offer.needs if "bedrock." in n]


def test_fireworks_refuses_a_dpo_beta_it_does_not_accept(tmp_path):
    from gateway.facade.plan import plan

    spec = JobSpec.from_yaml(job_file(tmp_path, BASE, "dpo", training={"dpo_beta": 0.6}))
    (offer,) = [o for o in plan(spec).offers if o.provider == "fireworks"]
    assert not offer.feasible and "beta below 0.5" in offer.reason
