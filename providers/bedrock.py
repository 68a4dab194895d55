"""AWS Bedrock: model customization of Llama 3.x (SFT); served only via Provisioned Throughput.

Jobs run through boto3 with botocore's own retries off for the control plane: the job name is
chosen here from the idempotency key and sent with it as `clientRequestToken`, so a repeated
create answers "already exists" (or returns the same job) and is adopted, never made twice.
Data goes to S3 with per-part SHA-256 checks (`providers.s3`). Credentials and region come
from boto3's usual chain; the endpoint from `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_BEDROCK`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.cost.offer import Offer, PlanContext
from gateway.errors import ProviderError, SpecError
from gateway.journal import JobRecord
from gateway.journal.records import Artifact, JobUpdate, RemoteEvent, normalize_state
from gateway.spec import ResolvedSpec
from gateway.util.retry import http_timeout_s, idempotent
from gateway.util.secrets import MissingKeyError
from gateway.util.units import HOURS_PER_MONTH, Range
from providers._bedrock_hyperparameters import hyperparameters
from providers._hosted import base_offer, epoch_tokens, hosted_hours
from providers.hosted_jobs import (
    HostedJobs,
    files,
    key_name,
    model_id,
    name_limit,
    prepare_data,
    suffix_for,
)

STATES = {
    "inprogress": "running",
    "stopping": "running",
    "completed": "succeeded",
    "failed": "failed",
    "stopped": "cancelled",
}
EXISTS = ("ResourceInUseException", "ConflictException")


def _has_aws_credentials(env: Mapping[str, str] | object) -> bool:
    get = getattr(env, "get", lambda _k: None)
    return bool(
        get("AWS_ACCESS_KEY_ID") or get("AWS_PROFILE") or get("AWS_WEB_IDENTITY_TOKEN_FILE")
    )


def _missing_settings(spec: ResolvedSpec) -> list[str]:
    """What the config still lacks for a launch (planning goes on without it)."""
    from gateway.catalog.config import load_config

    try:
        settings = load_config().bedrock
    except SpecError as exc:
        return [f"the tunegate config is invalid: {exc.message}"]
    out = []
    if not settings.role_arn:
        out.append("needs bedrock.role_arn (an IAM role) in the tunegate config to launch")
    if not (settings.s3_uri or (spec.bedrock and spec.bedrock.s3_uri)):
        out.append("needs bedrock.s3_uri (where the data goes) to launch")
    return out


class Bedrock(HostedJobs):
    """Credentials come from boto3's own chain and data goes to S3, so `check_ready` and
    `upload` are its own; the client is per AWS service."""

    name = "bedrock"

    @staticmethod
    def data_format_for(base: str) -> str:
        """Bedrock's record schema for a base model's family: Llama and other text models take
        prompt/completion; conversational models (Nova, closed chat models) the conversation
        schema (`gateway.data.convert` targets)."""
        from gateway.catalog import load_catalog

        model = load_catalog().model(base)
        llama = (model.chat_template or "").startswith("llama")
        return "bedrock" if llama else "bedrock-conversation"

    kind = "hosted"
    label = "Bedrock"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        spec, model = ctx.spec, ctx.model
        offer = base_offer(ctx, self.name, [])
        if not _has_aws_credentials(ctx.env):
            offer.needs.append("needs AWS credentials (AWS_ACCESS_KEY_ID or AWS_PROFILE) to launch")
        offer.needs += _missing_settings(spec)
        hosted = model.hosted.get("bedrock")
        if hosted is None:
            tunable = ", ".join(m.id for m in ctx.catalog.models if "bedrock" in m.hosted)
            return [
                offer.refuse(f"Bedrock does not customize {model.id} (this catalog has: {tunable})")
            ]
        offer.model_id = hosted.id
        if spec.method == "dora":
            offer.refuse("Bedrock does not let you choose the adapter method (DoRA requested)")
        elif spec.uses_adapter:
            offer.notes.append("Bedrock chooses how it tunes; LoRA settings are not used")
        hyper, refusals, notes = hyperparameters(spec, ctx.origin, ctx.catalog, hosted.id)
        for reason in refusals:
            offer.refuse(reason)
        offer.notes += notes
        if hosted.region:
            offer.notes.append(f"customization of {hosted.id} runs in {hosted.region}")
        train = ctx.catalog.prices["training"]["bedrock"]
        price = train["models"].get(hosted.id)
        if price is None:
            return [offer.refuse(f"no Bedrock training price for {hosted.id} in the catalog")]
        epochs = int(hyper.get("epochCount") or round(spec.training.epochs))
        billed = epochs * epoch_tokens(ctx)
        offer.billed_tokens = billed
        offer.train_usd = Range.of(billed / 1e3 * price["usd"])
        offer.train_hours = hosted_hours(ctx, billed)
        offer.assumptions.append(
            f"${price['usd']}/1K training tokens x {epochs} epochs ({train['source']}, {train['as_of']})"
        )
        serving = ctx.catalog.prices["serving"]["bedrock"]
        storage = serving["storage_usd_per_month"]
        if spec.serving.tokens_per_day <= 0:
            offer.serve_usd_month = Range.of(storage)
            offer.serve = f"no serving volume given; custom model storage ${storage}/month"
            offer.notes.append("serving a Bedrock-customized model needs Provisioned Throughput")
            return [offer]
        pt = serving["provisioned_throughput_usd_per_mu_hour"].get(hosted.id)
        if pt is None:
            return [offer.refuse(f"no Provisioned Throughput price for {hosted.id}")]
        units = hosted.provisioned_model_units
        offer.serve_usd_month = Range.of(units * pt["usd"] * HOURS_PER_MONTH + storage)
        offer.serve = (
            f"Provisioned Throughput (required for customized models): {units} model unit x "
            f"${pt['usd']}/h, billed 24/7, + ${storage}/month storage"
        )
        offer.notes.append("serving a Bedrock-customized model needs Provisioned Throughput")
        return [offer]

    # jobs ---------------------------------------------------------------------------------
    def client(
        self, service: str = "bedrock", region: str | None = None, *, retries: int = 1
    ) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            region_name=region,
            retries={"total_max_attempts": retries, "mode": "standard"},
            connect_timeout=min(10.0, http_timeout_s()),
            read_timeout=http_timeout_s(),
        )
        return boto3.session.Session().client(service, config=config)

    def credential_needs(self) -> list[tuple[str, ...]]:
        return [("AWS_ACCESS_KEY_ID", "AWS_PROFILE")]  # or boto3's other sources

    def check_ready(self) -> None:
        import boto3

        if boto3.session.Session().get_credentials() is None:
            raise MissingKeyError(
                "no AWS credentials found; Bedrock needs them to run jobs",
                fix="export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or AWS_PROFILE "
                "(tunegate reads boto3's usual chain and never stores them)",
            )
        self.role_arn()

    def role_arn(self) -> str:
        from gateway.catalog.config import config_path, load_config

        role = load_config().bedrock.role_arn
        if not role:
            raise SpecError(
                "Bedrock needs an IAM role it can assume to read the training data from S3 "
                "and write the outputs; none is configured",
                fix=f"set bedrock.role_arn in {config_path()} or TUNEGATE_BEDROCK_ROLE_ARN",
            )
        return role

    def _where(self, spec: ResolvedSpec, rec: JobRecord) -> tuple[str, str]:
        """(region, s3://bucket/prefix for this job) from the job, the config, then boto3."""
        import boto3

        from gateway.catalog import load_catalog
        from gateway.catalog.config import config_path, load_config

        settings = load_config().bedrock
        job = spec.bedrock
        base = (job.s3_uri if job else None) or settings.s3_uri
        if not base:
            raise SpecError(
                "Bedrock reads training data from S3 and no bucket is configured",
                fix=f"set bedrock.s3_uri in the job file, or in {config_path()}, "
                "or TUNEGATE_BEDROCK_S3_URI",
            )
        hosted = load_catalog().model(rec.base_model).hosted.get("bedrock")
        region = (
            (job.region if job else None)
            or settings.region
            or boto3.session.Session().region_name
            or (hosted.region if hosted else None)
        )
        if not region:
            raise SpecError("no AWS region for Bedrock", fix="export AWS_REGION=us-west-2")
        return region, f"{base.rstrip('/')}/{key_name(rec)}"

    def upload(self, rec: JobRecord, spec: ResolvedSpec, jobdir: Path) -> dict[str, str]:
        """Check the base is customizable here, convert the data to its family's schema, and
        upload it with checksums; returns the S3 URIs (and the region the job runs in)."""
        from providers.s3 import upload_verified

        region, prefix = self._where(spec, rec)
        self._check_base(region, model_id(rec))
        train, valid = prepare_data(spec, self.name, self.data_format_for(rec.base_model), jobdir)
        s3 = self.client("s3", region, retries=3)
        out = {"region": region, "output_uri": f"{prefix}/output/"}
        for role, path in (("training_file", train), ("validation_file", valid)):
            if path is not None:
                out[role] = upload_verified(s3, path, f"{prefix}/{path.name}").uri
        return out

    def _check_base(self, region: str, base: str) -> None:
        """Refuse up front when Bedrock in this region cannot fine-tune the base model."""
        from botocore.exceptions import ClientError

        bedrock = self.client("bedrock", region)
        try:
            info = idempotent(
                lambda: bedrock.get_foundation_model(modelIdentifier=base), what="model"
            )["modelDetails"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "AccessDeniedException":
                return  # the role may be allowed to customize without listing models
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise SpecError(
                    f"Bedrock in {region} has no model {base}",
                    fix="set bedrock.region to a region that offers it (see `tunegate models`)",
                ) from None
            raise
        if "FINE_TUNING" not in (info.get("customizationsSupported") or []):
            raise SpecError(
                f"Bedrock in {region} does not offer fine-tuning of {base}",
                fix="choose another base model or region, or another backend",
            )

    def create(self, rec: JobRecord, spec: ResolvedSpec) -> str:
        """One create request; "already exists" means an earlier request of this launch landed."""
        from botocore.exceptions import ClientError

        from gateway.catalog import load_catalog

        ids = files(rec)
        hyper, refusals, _ = hyperparameters(
            spec, rec.spec.get("_origin") or {}, load_catalog(), model_id(rec)
        )
        if refusals:
            raise SpecError("; ".join(refusals))
        bedrock = self.client("bedrock", ids["region"])
        request: dict[str, Any] = {
            "jobName": key_name(rec),
            "customModelName": suffix_for(rec, name_limit("bedrock")),
            "roleArn": self.role_arn(),
            "clientRequestToken": rec.idempotency_key,
            "baseModelIdentifier": model_id(rec),
            "customizationType": "FINE_TUNING",
            "trainingDataConfig": {"s3Uri": ids["training_file"]},
            "outputDataConfig": {"s3Uri": ids["output_uri"]},
            "hyperParameters": hyper,
            "jobTags": [{"key": "tunegate-key", "value": rec.idempotency_key}],
        }
        if "validation_file" in ids:
            request["validationDataConfig"] = {"validators": [{"s3Uri": ids["validation_file"]}]}
        try:
            bedrock.create_model_customization_job(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in EXISTS or not self.find(rec):
                raise
        return key_name(rec)

    def find(self, rec: JobRecord) -> str | None:
        """The job named after this launch's key, if a create reached Bedrock."""
        from botocore.exceptions import ClientError

        region = files(rec).get("region")
        if not region:
            return None
        try:
            job = self.client("bedrock", region).get_model_customization_job(
                jobIdentifier=key_name(rec)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
        if job.get("trainingDataConfig", {}).get("s3Uri") != files(rec).get("training_file"):
            raise ProviderError(f"Bedrock job {key_name(rec)} exists with other training data")
        return key_name(rec)

    def poll(self, rec: JobRecord) -> JobUpdate:
        ids = files(rec)
        bedrock = self.client("bedrock", ids["region"])
        job = idempotent(
            lambda: bedrock.get_model_customization_job(jobIdentifier=rec.remote_id),
            what="retrieve",
        )
        raw = str(job.get("status") or "InProgress")
        state, warning = normalize_state(raw, STATES)
        update = JobUpdate(raw, state, warnings=[warning] if warning else [])
        for stage, detail in (job.get("statusDetails") or {}).items():
            status = (detail or {}).get("status")
            if status:
                name = stage.removesuffix("Details")
                update.events.append(RemoteEvent(f"{name}|{status}", f"{name}: {status}"))
        update.remote = {
            "raw_state": raw,
            "job_arn": job.get("jobArn"),
            "output_model_arn": job.get("outputModelArn"),
            "output_model_name": job.get("outputModelName"),
        }
        if state == "succeeded":
            update.events += self._loss_curve(ids, update)
            loss = (job.get("trainingMetrics") or {}).get("trainingLoss")
            if loss is not None and update.loss is None:
                update.loss = loss
                update.events.append(
                    RemoteEvent("metric|final", f"training loss {loss:.4f}", data={"loss": loss})
                )
        if state == "failed":
            update.error = str(job.get("failureMessage") or raw)
        return update

    def _loss_curve(self, ids: dict[str, str], update: JobUpdate) -> list[RemoteEvent]:
        """Step-wise training loss from the metrics CSV Bedrock writes under the output prefix."""
        from providers.s3 import parse_s3_uri

        s3 = self.client("s3", ids["region"], retries=3)
        bucket, prefix = parse_s3_uri(ids["output_uri"])
        try:
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents") or []
            key = next(o["Key"] for o in listed if o["Key"].endswith("training_metrics.csv"))
            text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        except Exception:  # the curve is a nicety; its absence never fails a poll
            return []
        events = []
        for row in csv.DictReader(io.StringIO(text)):
            step = next((v for k, v in row.items() if "step" in k.lower()), None)
            loss = next((v for k, v in row.items() if "loss" in k.lower()), None)
            try:
                step_n, loss_f = int(float(step or "")), float(loss or "")
            except ValueError:
                continue
            update.step, update.loss = step_n, loss_f
            events.append(
                RemoteEvent(
                    f"metric|{step_n}",
                    f"step {step_n} loss {loss_f:.4f}",
                    None,
                    "info",
                    step_n,
                    {"loss": loss_f},
                )
            )
        return events

    def cancel(self, rec: JobRecord) -> None:
        bedrock = self.client("bedrock", files(rec)["region"])
        bedrock.stop_model_customization_job(jobIdentifier=rec.remote_id)

    def fetch(
        self, rec: JobRecord, dest: Path, *, progress: bool = False, merged: bool = False
    ) -> Artifact:
        """Bedrock keeps the weights: the artifact is the custom model's ARN."""
        if merged:
            raise ProviderError(
                "Bedrock does not release the weights of a model it customized",
                fix="train with a backend whose weights you can download to export or self-host",
            )
        remote = rec.remote or {}
        arn = remote.get("output_model_arn")
        if not arn:
            arn = self.poll(rec).remote.get("output_model_arn")
        return Artifact(
            "",
            rec.id,
            "hosted-model",
            str(arn),
            meta={
                "model_name": remote.get("output_model_name"),
                "region": files(rec).get("region"),
                "output_uri": files(rec).get("output_uri"),
                "serving": "needs Provisioned Throughput (priced by `tunegate plan`)",
            },
        )
