"""Together AI: LoRA or full fine-tuning, serverless multi-LoRA for a few bases, else dedicated.

Jobs run through the official `together` SDK with `max_retries=0` (see `gateway.util.retry`); the
model-name `suffix` carries the idempotency key, which is how `find` recognises a job whose
create was never answered. Results are downloaded with resume and unpacked by
`gateway.util.archive.safe_extract`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from gateway.cost.offer import Offer, PlanContext
from gateway.cost.serving import per_token_route
from gateway.journal import JobRecord
from gateway.journal.records import Artifact, JobUpdate, RemoteEvent, normalize_state
from gateway.spec import ResolvedSpec
from gateway.util.archive import safe_extract
from gateway.util.retry import http_timeout_s, idempotent
from gateway.util.units import Range
from providers._download import download
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
    model_id,
    name_limit,
    setting,
    suffix_for,
    user_set,
)

STATES = {
    "pending": "queued",
    "queued": "queued",
    "running": "running",
    "compressing": "running",
    "uploading": "running",
    "cancel_requested": "running",
    "cancelled": "cancelled",
    "error": "failed",
    "user_error": "failed",
    "completed": "succeeded",
}
NANODOLLARS = 1_000_000_000  # Together reports total_price in nanodollars (together.lib.utils)


def _ts(value: Any) -> float | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Together(HostedJobs):
    name = "together"
    kind = "hosted"
    label = "Together"
    key_vars = ("TOGETHER_API_KEY",)
    data_format = "together"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        spec, model = ctx.spec, ctx.model
        offer = base_offer(ctx, self.name, ["TOGETHER_API_KEY"])
        hosted = model.hosted.get("together")
        if hosted is None:
            return [
                offer.refuse(
                    f"Together does not tune {model.id} (not in its fine-tuning model list)"
                )
            ]
        offer.model_id = hosted.id
        if spec.method == "dora":
            offer.refuse("Together tunes LoRA or full weights, not DoRA")
        if spec.method == "full" and not hosted.full:
            offer.refuse(f"Together offers only LoRA for {hosted.id}")
        if spec.method == "qlora":
            offer.notes.append(
                "QLoRA runs as 16-bit LoRA on Together (QLoRA only saves local memory)"
            )
        prices = ctx.catalog.prices["training"]["together"]
        row = band(prices["bands"], model.size_b)
        if row is None:
            return [offer.refuse(f"no Together price band for a {model.size_b:.0f}B model")]
        key = f"{spec.objective}_{'full' if spec.method == 'full' else 'lora'}"
        epochs = spec.training.epochs
        billed = (
            epochs * epoch_tokens(ctx, packing_billed=False)
            + spec.training.n_evals * ctx.report.validation_tokens
        )
        offer.billed_tokens = billed
        offer.train_usd = Range.of(max(prices.get("minimum_usd", 0), billed / 1e6 * row[key]))
        offer.train_hours = hosted_hours(ctx, billed)
        offer.assumptions.append(
            f"${row[key]}/1M billed tokens ({key}, {prices['source']}, {prices['as_of']})"
        )
        if not spec.training.packing:
            offer.notes.append("packing off: Together bills examples x max_seq_len per epoch")
        if no_serving(ctx, offer):
            return [offer]
        serving = ctx.catalog.prices["serving"]["together"]
        tpd = spec.serving.tokens_per_day
        price = serving["serverless_per_1m_tokens"].get(hosted.id)
        if hosted.serverless_lora and spec.uses_adapter and price:
            route = per_token_route("Together serverless LoRA", price["usd"], tpd)
        else:
            route = dedicated_serving(ctx, "Together dedicated endpoint", serving["dedicated"])
        return [apply_route(offer, route, "no Together serving price")]

    # jobs ---------------------------------------------------------------------------------
    def client(self, *, max_retries: int = 0) -> Any:
        from together import Together as Client

        # base URL: the SDK reads TOGETHER_BASE_URL itself
        (key,) = self._keys()
        return Client(api_key=key, max_retries=max_retries, timeout=http_timeout_s())

    def _upload_one(self, client: Any, path: Path) -> str:
        # a repeated upload of the same bytes answers 409 with the existing file: safe to retry
        return str(
            idempotent(
                lambda: client.files.upload(file=path, purpose="fine-tune"), what="upload"
            ).id
        )

    def _training(
        self, rec: JobRecord, spec: ResolvedSpec
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(training_type, training_method) as Together's API spells them."""
        if spec.method == "full":
            ttype: dict[str, Any] = {"type": "Full"}
        else:
            modules = spec.lora.target_modules
            ttype = {
                "type": "Lora",
                "lora_r": spec.lora.rank,
                "lora_alpha": int(spec.lora.alpha),
                "lora_dropout": spec.lora.dropout,
                "lora_trainable_modules": modules
                if isinstance(modules, str)
                else ",".join(modules),
            }
        if spec.objective == "dpo":
            method: dict[str, Any] = {"method": "dpo", "dpo_beta": spec.training.dpo_beta}
        else:
            method = {"method": "sft", "train_on_inputs": "auto"}
        return ttype, method

    def quote(self, rec: JobRecord, spec: ResolvedSpec) -> dict[str, Any] | None:
        """Together's own price estimate for the uploaded files (shown before anything is billed)."""
        ttype, method = self._training(rec, spec)
        ids = files(rec)
        client = self.client()
        est = idempotent(
            lambda: client.fine_tuning.estimate_price(
                training_file=ids["training_file"],
                **({"validation_file": ids["validation_file"]} if "validation_file" in ids else {}),
                model=model_id(rec),
                n_epochs=max(1, round(spec.training.epochs)),
                n_evals=spec.training.n_evals,
                training_method=method,
                training_type=ttype,
            ),
            what="estimate-price",
        )
        if est.estimation_available is False:
            return {"available": False, "reason": getattr(est, "unavailable_reason", None)}
        return {
            "available": True,
            "usd": float(est.estimated_total_price or 0),
            "allowed_to_proceed": est.allowed_to_proceed,
            "train_tokens": est.estimated_train_token_count,
            "eval_tokens": est.estimated_eval_token_count,
        }

    def create(self, rec: JobRecord, spec: ResolvedSpec) -> str:
        """One create request; the caller decides what a failure means."""
        client = self.client()
        ttype, method = self._training(rec, spec)
        limits = idempotent(
            lambda: client.fine_tuning.model_limits(model_name=model_id(rec)), what="limits"
        )
        ids = files(rec)
        lora = ttype["type"] == "Lora"
        job = client.fine_tuning.create(
            training_file=ids["training_file"],
            validation_file=ids.get("validation_file", ""),
            model=model_id(rec),
            model_limits=limits,
            n_epochs=max(1, round(spec.training.epochs)),
            n_evals=spec.training.n_evals,
            batch_size=setting(rec, "training", "batch_size")
            if user_set(rec, "training.batch_size")
            else "max",
            learning_rate=spec.training.learning_rate,
            warmup_ratio=spec.training.warmup_ratio,
            packing=spec.training.packing,
            lora=lora,
            **(
                {
                    "lora_r": ttype["lora_r"],
                    "lora_alpha": ttype["lora_alpha"],
                    "lora_dropout": ttype["lora_dropout"],
                    "lora_trainable_modules": ttype["lora_trainable_modules"],
                }
                if lora
                else {}
            ),
            suffix=suffix_for(rec, name_limit(self.name)),
            random_seed=spec.training.seed,
            training_method=method["method"],
            **(
                {"dpo_beta": method["dpo_beta"]}
                if method["method"] == "dpo"
                else {"train_on_inputs": "auto"}
            ),
        )
        return str(job.id)

    def find(self, rec: JobRecord) -> str | None:
        """The remote job whose suffix carries this job's idempotency key, if any."""
        suffix = suffix_for(rec, name_limit(self.name))
        for job in self.client().fine_tuning.list().data or []:
            name = str(getattr(job, "x_model_output_name", None) or "")
            if getattr(job, "suffix", None) == suffix or name.endswith(suffix):
                return str(job.id)
        return None

    def poll(self, rec: JobRecord) -> JobUpdate:
        client = self.client()
        job = idempotent(lambda: client.fine_tuning.retrieve(rec.remote_id), what="retrieve")
        raw = str(getattr(job.status, "value", job.status))
        state, warning = normalize_state(raw, STATES)
        update = JobUpdate(raw, state, warnings=[warning] if warning else [])
        # FinetuneResponse declares no step counters: progress comes from events and metrics
        events = idempotent(
            lambda: client.fine_tuning.list_events(rec.remote_id).data, what="events"
        )
        for i, ev in enumerate(events or []):
            kind = str(getattr(ev.type, "value", ev.type) or "")
            data = {"type": kind}
            step = getattr(ev, "step", None)
            if getattr(ev, "total_steps", None):
                data["total_steps"] = ev.total_steps
                update.total_steps = ev.total_steps
            if step is not None:
                update.step = max(update.step or 0, int(step))
            level = str(getattr(ev.level, "value", ev.level) or "info")
            ident = f"{ev.created_at}|{kind}|{i}"
            update.events.append(
                RemoteEvent(ident, ev.message or kind, _ts(ev.created_at), level, step, data)
            )
        try:
            metrics = idempotent(
                lambda: client.fine_tuning.list_metrics(rec.remote_id), what="metrics"
            )
            total = update.total_steps
            for row in metrics.metrics or []:
                step = row.get("global_step", row.get("step"))
                loss = row.get("train_loss", row.get("loss"))
                if step is None or loss is None:
                    continue
                update.events.append(
                    RemoteEvent(
                        f"metric|{int(step)}",
                        f"step {int(step)} loss {loss:.4f}",
                        None,
                        "info",
                        int(step),
                        {"loss": loss, **({"total_steps": total} if total else {})},
                    )
                )
                update.step, update.loss = max(update.step or 0, int(step)), loss
        except Exception:  # the loss curve is a nicety; its absence never fails a poll
            pass
        update.remote = {
            "raw_state": raw,
            "model_output_name": getattr(job, "x_model_output_name", None),
            "adapter_output_name": getattr(job, "adapter_output_name", None),
            "training_type": ttype_name(job),
        }
        if job.total_price:
            update.actual = {
                "usd": job.total_price / NANODOLLARS,
                "billed_tokens": job.token_count,
                "source": "Together total_price",
            }
        if state == "failed":
            update.error = next(
                (e.message for e in reversed(update.events) if e.level == "error"), raw
            )
        return update

    def cancel(self, rec: JobRecord) -> None:
        self.client().fine_tuning.cancel(rec.remote_id)

    def fetch(
        self, rec: JobRecord, dest: Path, *, progress: bool = False, merged: bool = False
    ) -> Artifact:
        """Download the adapter (LoRA jobs; merged weights with `merged`) or the full model,
        resumably, and unpack it safely."""
        client = self.client()
        import httpx

        full = (rec.remote or {}).get("training_type") == "Full"
        checkpoint = "model_output_path" if full else ("merged" if merged else "adapter")
        url = f"/v1/finetune/download?ft_id={rec.remote_id}&checkpoint={checkpoint}"
        archive = Path(dest).with_name(Path(dest).name + ".tar")
        bar = _progress_bar(f"downloading {rec.remote_id}") if progress else None

        def open_stream(headers: dict[str, str]) -> Any:
            return client.get(
                url, cast_to=httpx.Response, stream=True, options={"headers": headers}
            )

        with bar or contextlib.nullcontext():
            path, sha, size = download(open_stream, archive, progress=bar.update if bar else None)
        if Path(dest).exists():
            shutil.rmtree(dest)
        members = safe_extract(path, Path(dest))
        return Artifact(
            "",
            rec.id,
            "full" if full else checkpoint,
            str(Path(dest).resolve()),
            sha,
            size,
            meta={
                "archive": str(path),
                "members": len(members),
                "model_output_name": (rec.remote or {}).get("model_output_name"),
            },
        )


def ttype_name(job: Any) -> str | None:
    ttype = getattr(job, "training_type", None)
    return getattr(ttype, "type", None) if ttype is not None else None


def _progress_bar(label: str) -> Any:
    from gateway.util.progress import ByteProgress

    return ByteProgress(label)
