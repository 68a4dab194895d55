"""Fireworks AI: LoRA SFT and DPO; LoRA serving needs a dedicated deployment (current docs).

Jobs run through the official `fireworks-ai` SDK with `max_retries=0`. Every remote resource gets
an id chosen here from the job's idempotency key (datasets `tg-<key>-train`, the job `tg-<key>`),
so a create that was retried, or sent by a process that then died, can only ever answer
"already exists" for the same job: it is adopted, never made twice.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

from gateway.cost.offer import Offer, PlanContext
from gateway.cost.serving import per_token_route
from gateway.errors import ProviderError
from gateway.journal import JobRecord
from gateway.journal.records import Artifact, JobUpdate, RemoteEvent, normalize_state
from gateway.spec import ResolvedSpec
from gateway.util.retry import http_timeout_s, idempotent
from gateway.util.units import Range
from providers._hosted import (
    apply_route,
    band,
    base_offer,
    dedicated_serving,
    epoch_tokens,
    hosted_hours,
    no_serving,
)
from providers.hosted_jobs import (
    HostedJobs,
    files,
    key_name,
    model_id,
    prepare_data,
    setting,
    user_set,
)

STATES = {
    "job_state_unspecified": "queued",
    "job_state_creating": "queued",
    "job_state_pending": "queued",
    "job_state_validating": "queued",
    "job_state_creating_input_dataset": "queued",
    "job_state_re_queueing": "queued",
    "job_state_idle": "queued",
    "job_state_paused": "queued",
    "job_state_running": "running",
    "job_state_writing_results": "running",
    "job_state_cancelling": "running",
    "job_state_completed": "succeeded",
    "job_state_early_stopped": "succeeded",
    "job_state_failed": "failed",
    "job_state_expired": "failed",
    "job_state_cancelled": "cancelled",
    "job_state_deleting": "cancelled",
    "job_state_deleting_cleaning_up": "cancelled",
}


class Fireworks(HostedJobs):
    name = "fireworks"
    kind = "hosted"
    label = "Fireworks"
    key_vars = ("FIREWORKS_API_KEY", "FIREWORKS_ACCOUNT_ID")
    data_format = "fireworks"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        spec, model = ctx.spec, ctx.model
        offer = base_offer(ctx, self.name, ["FIREWORKS_API_KEY", "FIREWORKS_ACCOUNT_ID"])
        hosted = model.hosted.get("fireworks")
        if hosted is None:
            return [
                offer.refuse(
                    f"Fireworks does not tune {model.id} (not in its fine-tuning model list)"
                )
            ]
        offer.model_id = hosted.id
        if spec.method in ("full", "dora"):
            offer.refuse(f"Fireworks tunes LoRA adapters only ({spec.method} requested)")
        limits = ctx.catalog.rules.lora["fireworks"]
        rank = spec.lora.rank
        if spec.uses_adapter and not limits.min_rank <= rank <= limits.max_rank:
            offer.refuse(
                f"Fireworks accepts LoRA rank {limits.min_rank}-{limits.max_rank}; "
                f"the job asks for {rank}"
            )
        if spec.method == "qlora":
            offer.notes.append("QLoRA runs as 16-bit LoRA on Fireworks")
        beta = spec.training.dpo_beta
        top = limits.max_dpo_beta
        if spec.objective == "dpo" and beta is not None and top is not None and beta >= top:
            offer.refuse(f"Fireworks accepts DPO beta below {top}; the job asks for {beta}")
        prices = ctx.catalog.prices["training"]["fireworks"]
        row = band(prices["bands"], model.size_b)
        if row is None:
            return [offer.refuse(f"no Fireworks price band for a {model.size_b:.0f}B model")]
        rate = row["sft"] * (prices["dpo_multiplier"] if spec.objective == "dpo" else 1)
        billed = spec.training.epochs * epoch_tokens(ctx)
        offer.billed_tokens = billed
        offer.train_usd = Range.of(billed / 1e6 * rate)
        offer.train_hours = hosted_hours(ctx, billed)
        offer.assumptions.append(
            f"${rate:g}/1M training tokens ({prices['source']}, {prices['as_of']})"
        )
        if no_serving(ctx, offer):
            return [offer]
        serving = ctx.catalog.prices["serving"]["fireworks"]
        tpd = spec.serving.tokens_per_day
        if serving.get("serverless_lora"):
            row = band(serving["serverless_per_1m_tokens_bands"], model.size_b)
            route = per_token_route("Fireworks serverless", row["usd"], tpd) if row else None
        else:
            route = dedicated_serving(ctx, "Fireworks on-demand deployment", serving["dedicated"])
            offer.notes.append(
                "Fireworks serves LoRA models on a dedicated deployment (billed per GPU-hour)"
            )
        return [apply_route(offer, route, "no Fireworks serving price for this size")]

    # jobs ---------------------------------------------------------------------------------
    def client(self, *, max_retries: int = 0) -> Any:
        from fireworks import Fireworks as Client

        # base URL: the SDK reads FIREWORKS_BASE_URL itself (and only then leaves production)
        key, account = self._keys()
        return Client(
            api_key=key,
            account_id=account,
            max_retries=max_retries,
            timeout=http_timeout_s(),
        )

    def upload(self, rec: JobRecord, spec: ResolvedSpec, jobdir: Path) -> dict[str, str]:
        """Check, convert and upload each file as a dataset named after the job's key."""
        train, valid = prepare_data(spec, self.name, "fireworks", jobdir)
        client = self.client()
        out = {"training_file": self._dataset(client, rec, "train", train)}
        if valid is not None:
            out["validation_file"] = self._dataset(client, rec, "valid", valid)
        return out

    def _dataset(self, client: Any, rec: JobRecord, role: str, path: Path) -> str:
        """Create (or find) the dataset, upload the file, validate; returns the dataset name.

        Every step is safe to repeat: the id is fixed, and an upload replaces the file."""
        import fireworks

        dataset_id = f"{key_name(rec)}-{role}"
        with path.open("rb") as fh:
            rows = sum(1 for line in fh if line.strip())

        def create() -> None:
            # "already exists": made by an earlier, unanswered request of this launch
            with contextlib.suppress(fireworks.ConflictError):
                client.datasets.create(
                    dataset_id=dataset_id,
                    dataset={"user_uploaded": {}, "example_count": str(rows), "format": "CHAT"},
                )

        idempotent(create, what="dataset create")
        existing = idempotent(lambda: client.datasets.get(dataset_id), what="dataset")
        if getattr(existing, "state", None) != "READY":
            idempotent(lambda: client.datasets.upload(dataset_id, file=path), what="upload")
            idempotent(
                lambda: client.datasets.validate_upload(dataset_id, body={}), what="validate"
            )
        return str(existing.name or f"accounts/{client.account_id}/datasets/{dataset_id}")

    def _training(self, rec: JobRecord, spec: ResolvedSpec) -> dict[str, Any]:
        """The training settings in the SDK's snake_case (sent camelCase)."""
        out: dict[str, Any] = {
            "base_model": model_id(rec),
            "output_model": output_model(rec),
            "epochs": max(1, round(spec.training.epochs)),
            "lora_rank": spec.lora.rank,
        }
        if spec.training.learning_rate:
            out["learning_rate"] = spec.training.learning_rate
        if spec.training.max_seq_len:
            out["max_context_length"] = spec.training.max_seq_len
        if user_set(rec, "training.batch_size"):  # Fireworks' batch_size counts tokens
            out["batch_size_samples"] = int(setting(rec, "training", "batch_size"))
        return out

    def create(self, rec: JobRecord, spec: ResolvedSpec) -> str:
        """One create request with the job id chosen here; "already exists" means a previous
        request of this very launch got through, so that job is the answer."""
        import fireworks

        client, ids, job_id = self.client(), files(rec), key_name(rec)
        training = self._training(rec, spec)
        try:
            if spec.objective == "dpo":
                client.dpo_jobs.create(
                    dpo_job_id=job_id,
                    dataset=ids["training_file"],
                    display_name=rec.name or rec.id,
                    training_config=training,
                    # the API's default loss for a "DPO job" is GRPO: say DPO explicitly
                    loss_config={"method": "DPO", "dpo": {"beta": spec.training.dpo_beta}},
                )
            else:
                client.supervised_fine_tuning_jobs.create(
                    supervised_fine_tuning_job_id=job_id,
                    dataset=ids["training_file"],
                    display_name=rec.name or rec.id,
                    **(
                        {"evaluation_dataset": ids["validation_file"]}
                        if "validation_file" in ids
                        else {}
                    ),
                    **training,
                )
        except fireworks.ConflictError:
            if self.find(rec) is None:
                raise
        return job_id

    def _jobs(self, client: Any, rec: JobRecord) -> Any:
        objective = (rec.spec or {}).get("objective")
        return client.dpo_jobs if objective == "dpo" else client.supervised_fine_tuning_jobs

    def find(self, rec: JobRecord) -> str | None:
        """The job with this launch's id, if a create reached Fireworks."""
        import fireworks

        client = self.client()
        try:
            job = self._jobs(client, rec).get(key_name(rec))
        except fireworks.NotFoundError:
            return None
        if getattr(job, "dataset", None) not in (None, files(rec).get("training_file")):
            raise ProviderError(
                f"Fireworks job {key_name(rec)} exists with another dataset ({job.dataset})"
            )
        return key_name(rec)

    def poll(self, rec: JobRecord) -> JobUpdate:
        client = self.client()
        job = idempotent(lambda: self._jobs(client, rec).get(rec.remote_id), what="retrieve")
        raw = str(job.state or "JOB_STATE_UNSPECIFIED")
        state, warning = normalize_state(raw, STATES)
        update = JobUpdate(raw, state, warnings=[warning] if warning else [])
        progress = getattr(job, "job_progress", None)
        percent = getattr(progress, "percent", None)
        if percent is not None:
            update.step, update.total_steps = int(percent), 100
            update.events.append(
                RemoteEvent(
                    f"progress|{percent}",
                    f"{percent}% done" + (f" (epoch {progress.epoch})" if progress.epoch else ""),
                    None,
                    "info",
                    int(percent),
                    {"total_steps": 100, "percent": percent},
                )
            )
        training = getattr(job, "training_config", None) or job
        output = getattr(training, "output_model", None) or output_model(rec)
        if "/" not in output:
            output = f"accounts/{client.account_id}/models/{output}"
        update.remote = {"raw_state": raw, "output_model": output}
        cost = getattr(job, "estimated_cost", None)
        if cost is not None and (cost.units or cost.nanos):
            update.actual = {
                "usd": int(cost.units or 0) + (cost.nanos or 0) / 1e9,
                "source": "Fireworks estimatedCost",
            }
        status = getattr(job, "status", None)
        if state == "failed":
            code = getattr(status, "code", None) or "FAILED"
            update.error = f"{code}: {getattr(status, 'message', None) or raw}"
        return update

    def cancel(self, rec: JobRecord) -> None:
        self._jobs(self.client(), rec).cancel(rec.remote_id, body={})

    def fetch(
        self, rec: JobRecord, dest: Path, *, progress: bool = False, merged: bool = False
    ) -> Artifact:
        """Download the adapter files where Fireworks offers them; otherwise the artifact is the
        hosted model name (which is what Fireworks serves)."""
        import fireworks

        if merged:
            raise ProviderError(
                "Fireworks returns a LoRA adapter, not merged weights",
                fix=f"tunegate fetch {rec.id}, then tunegate export {rec.id} --to merged",
            )
        client = self.client()
        model = (rec.remote or {}).get("output_model") or output_model(rec)
        short = model.rsplit("/", 1)[-1]
        try:
            urls = idempotent(
                lambda: client.models.get_download_endpoint(short), what="download endpoint"
            ).filename_to_signed_urls
        except (fireworks.NotFoundError, fireworks.PermissionDeniedError):
            urls = None
        if not urls:
            return Artifact("", rec.id, "hosted-model", model, meta={"downloadable": False})
        got = _download_files(urls, Path(dest), progress=progress)
        manifest = "".join(f"{name} {sha}\n" for name, (sha, _) in sorted(got.items()))
        return Artifact(
            "",
            rec.id,
            "adapter",
            str(Path(dest).resolve()),
            hashlib.sha256(manifest.encode()).hexdigest(),
            sum(size for _, size in got.values()),
            meta={"hosted_model": model, "files": {k: v[0] for k, v in got.items()}},
        )


def output_model(rec: JobRecord) -> str:
    from providers.hosted_jobs import name_limit, suffix_for

    return suffix_for(rec, name_limit("fireworks"))


def _download_files(
    urls: dict[str, str], dest: Path, *, progress: bool
) -> dict[str, tuple[str, int]]:
    """Each signed URL into `dest/<name>`, resumably; names that could escape `dest` are refused."""
    import httpx

    from gateway.util.progress import ByteProgress
    from providers._download import download

    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[str, int]] = {}
    with httpx.Client(timeout=http_timeout_s(), follow_redirects=True) as http:
        for name, url in sorted(urls.items()):
            if not name or "/" in name or "\\" in name or name in (".", ".."):
                raise ProviderError(f"Fireworks offered a file with an unsafe name: {name!r}")

            def open_stream(headers: dict[str, str], url: str = url) -> Any:
                return http.send(http.build_request("GET", url, headers=headers), stream=True)

            bar = ByteProgress(f"downloading {name}") if progress else None
            if bar is None:
                _, sha, size = download(open_stream, dest / name)
            else:
                with bar:
                    _, sha, size = download(open_stream, dest / name, progress=bar.update)
            out[name] = (sha, size)
    return out
