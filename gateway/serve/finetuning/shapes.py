"""The objects of OpenAI's fine-tuning API as the official SDK parses them (`FineTuningJob`,
`FineTuningJobEvent`, cursor pages), built from tunegate's journal. Status words are OpenAI's;
a job reads `succeeded` only once its model is deployed and answering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.journal import JobRecord
from gateway.serve.finetuning.store import FtJob

LIMITS = {"jobs": 20, "events": 20, "checkpoints": 10, "files": 10_000}


def page(items: list[dict[str, Any]], after: str | None, limit: int | None, kind: str) -> dict:
    """A cursor page: the items after the one whose id is `after`, and whether more follow."""
    limit = max(1, min(int(limit or LIMITS[kind]), 100 if kind != "files" else 10_000))
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}


def fine_tuned_name(base: str, suffix: str | None, job_id: str) -> str:
    """`ft:BASE:tunegate:SUFFIX:JOB`, the shape OpenAI gives its fine-tuned models."""
    tail = Path(base).name if "/" in base or Path(base).exists() else base
    return f"ft:{tail}:tunegate:{suffix or ''}:{job_id}"


def job_object(row: FtJob, rec: JobRecord) -> dict[str, Any]:
    """The `FineTuningJob` the SDK parses, from the journaled job and the API's row."""
    status = _status(rec, row)
    training = (rec.spec or {}).get("training") or {}
    body = row.request
    hyper = {
        "n_epochs": training.get("epochs"),
        "batch_size": training.get("batch_size"),
        "learning_rate_multiplier": training.get("learning_rate_multiplier") or 1.0,
    }
    method = dict(body.get("method") or {"type": "supervised"})
    kind = method.get("type", "supervised")
    method[kind] = {
        "hyperparameters": hyper | ({"beta": training.get("dpo_beta")} if kind == "dpo" else {})
    }
    error = None
    if status == "failed":
        error = row.error or {
            "code": "job_failed",
            "message": rec.error or "failed",
            "param": None,
        }
    done = status in ("succeeded", "failed", "cancelled")
    return {
        "id": rec.id,
        "object": "fine_tuning.job",
        "created_at": int(rec.created_at),
        "finished_at": int(rec.finished_at) if done and rec.finished_at else None,
        "model": body.get("model"),
        "fine_tuned_model": row.fine_tuned_model if status == "succeeded" else None,
        "organization_id": "org-tunegate",
        "status": status,
        "hyperparameters": hyper,
        "method": method,
        "training_file": body.get("training_file"),
        "validation_file": body.get("validation_file"),
        "result_files": [row.result_file] if row.result_file else [],
        "trained_tokens": (rec.actual or {}).get("trained_tokens"),
        "error": error,
        "seed": training.get("seed"),
        "suffix": body.get("suffix"),
        "user_provided_suffix": body.get("suffix"),
        "metadata": body.get("metadata"),
        "integrations": None,
        "estimated_finish": None,
        "tunegate": {
            "backend": rec.provider,
            "deploy_to": row.deploy_to,
            "estimate": rec.estimate,
        },
    }


def _status(rec: JobRecord, row: FtJob) -> str:
    if rec.state in ("pending", "uploading"):
        return "validating_files"
    if rec.state == "succeeded":
        return {"deployed": "succeeded", "deploy_failed": "failed"}.get(row.state, "running")
    return rec.state  # queued, running, failed, cancelled: the same words


def event_object(ev: Any) -> dict[str, Any]:
    data = ev.data or {}
    metrics = ev.step is not None and data.get("loss") is not None
    level = data.get("level") or ("error" if ev.kind in ("error",) else "info")
    if level == "warning":
        level = "warn"
    out: dict[str, Any] = {
        "id": f"ftevent-{ev.id}",
        "object": "fine_tuning.job.event",
        "created_at": int(ev.ts),
        "level": level,
        "message": ev.message,
        "type": "metrics" if metrics else "message",
        "data": None,
    }
    if metrics:
        out["data"] = {
            "step": ev.step,
            "train_loss": data["loss"],
            "total_steps": data.get("total_steps"),
        }
    return out
