"""OpenAI: supervised and DPO fine-tuning of OpenAI's own models; served per token.

Jobs run through the official `openai` SDK with `max_retries=0`: idempotent calls are retried by
`gateway.util.retry`, creates never (a create carries the idempotency key in `metadata`, which is how
`find` recognises it after an unanswered request).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.cost.offer import Offer, PlanContext
from gateway.cost.serving import blended_per_1m, per_token_route
from gateway.journal import JobRecord
from gateway.journal.records import JobUpdate, RemoteEvent, normalize_state
from gateway.spec import ResolvedSpec
from gateway.util.retry import http_timeout_s, idempotent
from gateway.util.units import Range
from providers._hosted import base_offer, epoch_tokens, hosted_hours, no_serving
from providers.hosted_jobs import HostedJobs, files, model_id, setting, suffix_for, user_set

STATES = {
    "validating_files": "queued",
    "queued": "queued",
    "running": "running",
    "paused": "queued",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
SINGLE_UPLOAD_LIMIT = 512 * 1024**2  # bytes; larger files go through the Uploads API (64 MB parts)
KEY_FIELD = "tunegate_key"


class OpenAI(HostedJobs):
    name = "openai"
    kind = "hosted"
    label = "OpenAI"
    key_vars = ("OPENAI_API_KEY",)
    data_format = "openai"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        spec, model = ctx.spec, ctx.model
        offer = base_offer(ctx, self.name, ["OPENAI_API_KEY"])
        hosted = model.hosted.get("openai")
        if hosted is None:
            tunable = ", ".join(m.id for m in ctx.catalog.models if "openai" in m.hosted)
            return [
                offer.refuse(f"OpenAI tunes only its own models ({tunable}); {model.id} is not one")
            ]
        offer.model_id = hosted.id
        if spec.method == "dora":
            offer.refuse("OpenAI does not let you choose the adapter method (DoRA requested)")
        elif spec.method != "lora":
            offer.notes.append(
                f"OpenAI chooses how it tunes; method {spec.method} and LoRA settings are not used"
            )
        prices = ctx.catalog.prices["training"]["openai"]
        price = prices["models"].get(hosted.id)
        if price is None:
            return [offer.refuse(f"no OpenAI training price for {hosted.id} in the catalog")]
        billed = spec.training.epochs * epoch_tokens(ctx)
        offer.billed_tokens = billed
        offer.train_usd = Range.of(billed / 1e6 * price["usd"])
        offer.train_hours = hosted_hours(ctx, billed)
        offer.assumptions.append(
            f"${price['usd']}/1M training tokens ({prices['source']}, {prices['as_of']})"
        )
        if no_serving(ctx, offer):
            return [offer]
        serve = ctx.catalog.prices["serving"]["openai"]["models"].get(hosted.id)
        if serve is None:
            return [offer.refuse(f"no OpenAI serving price for {hosted.id}")]
        blended = blended_per_1m(serve["input"], serve["output"], spec.serving.output_share)
        route = per_token_route(f"OpenAI ft:{hosted.id}", blended, spec.serving.tokens_per_day)
        offer.serve, offer.serve_usd_month, offer.serve_usd_per_1m = (
            route.label,
            route.usd_month,
            route.usd_per_1m,
        )
        offer.assumptions.append(
            f"serving blends ${serve['input']}/1M input and ${serve['output']}/1M output at "
            f"{spec.serving.output_share:.0%} output"
        )
        return [offer]

    # jobs ---------------------------------------------------------------------------------
    single_upload_limit = SINGLE_UPLOAD_LIMIT

    def client(self, *, max_retries: int = 0) -> Any:
        from openai import OpenAI as Client

        # base URL: the SDK reads OPENAI_BASE_URL itself
        (key,) = self._keys()
        return Client(api_key=key, max_retries=max_retries, timeout=http_timeout_s())

    def _upload_one(self, client: Any, path: Path) -> str:
        if path.stat().st_size > self.single_upload_limit:
            upload = idempotent(
                lambda: client.uploads.upload_file_chunked(
                    file=path, mime_type="application/jsonl", purpose="fine-tune"
                ),
                what="upload",
            )
            return str(upload.file.id)

        def single() -> str:
            with path.open("rb") as fh:
                return str(client.files.create(file=(path.name, fh), purpose="fine-tune").id)

        return idempotent(single, what="upload")

    def create(self, rec: JobRecord, spec: ResolvedSpec) -> str:
        """One create request; the caller decides what a failure means."""
        hyper: dict[str, Any] = {
            "n_epochs": max(1, round(spec.training.epochs))
            if user_set(rec, "training.epochs")
            else "auto",
            "batch_size": setting(rec, "training", "batch_size")
            if user_set(rec, "training.batch_size")
            else "auto",
            "learning_rate_multiplier": setting(rec, "training", "learning_rate_multiplier")
            or "auto",
        }
        method = "dpo" if spec.objective == "dpo" else "supervised"
        if method == "dpo":
            hyper["beta"] = spec.training.dpo_beta
        ids = files(rec)
        job = self.client().fine_tuning.jobs.create(
            model=model_id(rec),
            training_file=ids["training_file"],
            **({"validation_file": ids["validation_file"]} if "validation_file" in ids else {}),
            suffix=suffix_for(rec, 64),
            seed=spec.training.seed,
            metadata={KEY_FIELD: rec.idempotency_key, "tunegate_job": rec.id},
            method={"type": method, method: {"hyperparameters": hyper}},
        )
        return str(job.id)

    def find(self, rec: JobRecord) -> str | None:
        """The remote job created with this job's idempotency key, if any."""
        page = self.client().fine_tuning.jobs.list(
            metadata={KEY_FIELD: rec.idempotency_key}, limit=100
        )
        for job in page:  # the SDK page iterates over every page
            if (job.metadata or {}).get(KEY_FIELD) == rec.idempotency_key:
                return str(job.id)
        return None

    def poll(self, rec: JobRecord) -> JobUpdate:
        client = self.client()
        job = idempotent(lambda: client.fine_tuning.jobs.retrieve(rec.remote_id), what="retrieve")
        state, warning = normalize_state(job.status, STATES)
        events = idempotent(
            lambda: client.fine_tuning.jobs.list_events(rec.remote_id, limit=100).data,
            what="events",
        )
        update = JobUpdate(str(job.status), state, warnings=[warning] if warning else [])
        for ev in sorted(events, key=lambda e: (e.created_at, e.id)):
            data = dict(ev.data or {}) if isinstance(ev.data, dict) else {}
            step = data.get("step")
            loss = data.get("train_loss")
            if loss is not None:
                data["loss"] = loss
            update.events.append(
                RemoteEvent(str(ev.id), ev.message, float(ev.created_at), ev.level, step, data)
            )
            if step is not None:
                update.step, update.total_steps = step, data.get("total_steps")
                update.loss = loss
        remote: dict[str, Any] = {"raw_state": job.status}
        if job.fine_tuned_model:
            remote["fine_tuned_model"] = job.fine_tuned_model
        if state == "succeeded":
            checkpoints = idempotent(
                lambda: client.fine_tuning.jobs.checkpoints.list(rec.remote_id, limit=100).data,
                what="checkpoints",
            )
            remote["checkpoints"] = [
                {"step": c.step_number, "model": c.fine_tuned_model_checkpoint} for c in checkpoints
            ]
        update.remote = remote
        if job.trained_tokens:
            update.actual = self._actual(rec, int(job.trained_tokens))
        if job.error and getattr(job.error, "message", None):
            update.error = f"{job.error.code or 'error'}: {job.error.message}"
        return update

    def _actual(self, rec: JobRecord, trained_tokens: int) -> dict[str, Any]:
        """OpenAI reports trained tokens, not dollars: priced at the catalog rate."""
        from gateway.catalog import load_catalog

        price = load_catalog().prices["training"]["openai"]["models"].get(model_id(rec))
        out: dict[str, Any] = {"billed_tokens": trained_tokens, "source": "OpenAI trained_tokens"}
        if price:
            out["usd"] = trained_tokens / 1e6 * price["usd"]
            out["usd_basis"] = f"trained_tokens x ${price['usd']}/1M (catalog)"
        return out

    def cancel(self, rec: JobRecord) -> None:
        self.client().fine_tuning.jobs.cancel(rec.remote_id)

    def fetch(
        self, rec: JobRecord, dest: Path, *, progress: bool = False, merged: bool = False
    ) -> Any:
        """OpenAI keeps the weights: the artifact is the fine-tuned model id."""
        from gateway.journal.records import Artifact

        model = (rec.remote or {}).get("fine_tuned_model")
        if not model:
            job = idempotent(
                lambda: self.client().fine_tuning.jobs.retrieve(rec.remote_id), what="retrieve"
            )
            model = job.fine_tuned_model
        checkpoints = (rec.remote or {}).get("checkpoints") or []
        return Artifact("", rec.id, "hosted-model", str(model), meta={"checkpoints": checkpoints})
