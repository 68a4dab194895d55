"""OpenAI's fine-tuning API over tunegate's jobs: files, create (once), list, retrieve, cancel,
events, checkpoints, shaped as the official SDK parses them.

A job is the tunegate job (`tunegate jobs` lists it, its id is the API's id). When training
succeeds the model is deployed by the rule for its backend (llama.cpp for this machine's jobs,
the provider's own serving for hosted ones) under its `fine_tuned_model` name, which
`tunegate serve` answers at once; the API says `succeeded` only then.

A create is launched once: an `Idempotency-Key` header names it; without one, the SDK's retry
of the same request (same content and key, `x-stainless-retry-count` above 0, within ten
minutes) returns the job the first attempt made, even when that attempt's answer was lost.
"""

from __future__ import annotations

import csv
import io
import threading
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from gateway.data.formats import load
from gateway.data.validate import check_file
from gateway.errors import TunegateError
from gateway.journal import JobRecord, Journal
from gateway.journal.serving import ApiKey
from gateway.serve.finetuning.shapes import event_object, fine_tuned_name, job_object, page
from gateway.serve.finetuning.spec import ApiError, map_create
from gateway.serve.finetuning.store import FtJob, FtStore, StoredFile, content_sha
from providers import serving_target

LAUNCH_WAIT_S = 300.0


def _not_found(what: str, ref: str) -> ApiError:
    return ApiError(404, f"no {what} '{ref}' here", param=None, code=f"{what}_not_found")


class FineTuning:
    """The API's state for one gateway process."""

    def __init__(self, journal_path: Path, files_dir: Path, default_base: str | None = None):
        self.store = FtStore(journal_path)
        self.journal_path = journal_path
        self.files_dir = files_dir
        self.default_base = default_base
        self._launch_lock = threading.Lock()

    def close(self) -> None:
        self.store.close()

    # files --------------------------------------------------------------------------------
    def upload(
        self, filename: str, purpose: str, data: bytes | BinaryIO, key: ApiKey | None
    ) -> StoredFile:
        """Store the bytes as sent and check them with tunegate's checker (format and every
        example), so `status` is `processed` or `error` with the lines, never left pending."""
        if purpose != "fine-tune":
            raise ApiError(
                400,
                "only purpose `fine-tune` is served here",
                param="purpose",
                code="invalid_value",
            )
        stored = self.store.add_file(
            filename, purpose, data, self.files_dir, "processed", None, key.id if key else None
        )
        if not stored.bytes:
            self.store.delete_file(stored.id)
            raise ApiError(400, "the file is empty", param="file", code="invalid_file")
        try:
            errors = [f for f in check_file(load(stored.path)) if f.severity == "error"]
        except TunegateError as exc:
            errors, details = [], exc.message
        else:
            details = None
        if errors:
            details = "; ".join(f"line {f.line}: {f.message}" for f in errors[:5])
            if len(errors) > 5:
                details += f" (and {len(errors) - 5} more)"
        if details:
            self.store._write(
                "UPDATE files SET status = 'error', status_details = ? WHERE id = ?",
                [(details, stored.id)],
            )
        found = self.store.file(stored.id)
        assert found is not None
        return found

    def file(self, file_id: str) -> StoredFile:
        found = self.store.file(file_id)
        if found is None:
            raise _not_found("file", file_id)
        return found

    # create -------------------------------------------------------------------------------
    def create(
        self,
        body: dict[str, Any],
        key: ApiKey | None,
        *,
        idempotency_key: str | None = None,
        retry_count: str | None = None,
        budget_left_usd: float | None = None,
    ) -> dict[str, Any]:
        key_id = key.id if key else None
        sha = content_sha(key_id, body)
        if idempotency_key:
            request_key = f"idem:{key_id}:{idempotency_key}"
            existing = self.store.ft_by_key(request_key)
            if existing is not None:
                return self._after_launch(existing)
        else:
            request_key = "req:" + uuid.uuid4().hex
            if retry_count != "0":  # the SDK's retry (or a client that does not say)
                existing = self.store.ft_by_content(sha)
                if existing is not None:
                    return self._after_launch(existing)
        files = {
            str(ref): self.store.file(str(ref))
            for ref in (body.get("training_file"), body.get("validation_file"))
            if ref
        }
        mapped = map_create(
            body, files, default_base=self.default_base, budget_left_usd=budget_left_usd
        )
        with self._launch_lock:  # claims are checked and written one at a time
            row = self.store.claim(request_key, sha, key_id, body, mapped.deploy_to)
        if row is None:
            existing = self.store.ft_by_key(request_key)
            assert existing is not None
            return self._after_launch(existing)
        from gateway.facade.launch import launch

        try:
            job = launch(mapped.spec, backend=mapped.backend)
        except TunegateError as exc:
            error = ApiError(400, exc.message, param="model", code="launch_refused")
            self.store.ft_update(request_key, state="launch_failed", error=error.body()["error"])
            raise error from None
        rec = job.record
        self.store.ft_update(
            request_key,
            job_id=rec.id,
            state="launched",
            deploy_to=mapped.deploy_to or serving_target(rec.provider),
            fine_tuned_model=fine_tuned_name(rec.base_model, body.get("suffix"), rec.id),
        )
        return self.retrieve(rec.id)

    def _after_launch(self, row: FtJob) -> dict[str, Any]:
        """The job an earlier attempt launched (waiting while it is still launching)."""
        deadline = time.monotonic() + LAUNCH_WAIT_S
        while row.state == "launching" and time.monotonic() < deadline:
            time.sleep(0.1)
            row = self.store.ft_by_key(row.request_key) or row
        if row.state == "launch_failed" and row.error:
            raise ApiError(
                400, row.error["message"], param=row.error.get("param"), code=row.error.get("code")
            )
        if row.job_id is None:
            raise ApiError(
                409, "the first attempt of this create is still launching", code="conflict"
            )
        return self.retrieve(row.job_id)

    # read ---------------------------------------------------------------------------------
    def _row(self, job_id: str) -> FtJob:
        row = self.store.ft_job(job_id)
        if row is None:
            raise _not_found("fine_tuning_job", job_id)
        return row

    def _record(self, row: FtJob, poll: bool) -> JobRecord:
        from gateway.facade.jobs import Job

        assert row.job_id is not None
        with Journal(self.journal_path) as journal:
            job = Job(row.job_id, journal)
            rec = job.status() if poll else job.record
        if poll and rec.state == "succeeded" and row.state == "launched":
            self._deploy_in_background(row)
        return rec

    def retrieve(self, job_id: str) -> dict[str, Any]:
        row = self._row(job_id)
        rec = self._record(row, poll=True)
        return job_object(self.store.ft_job(job_id) or row, rec)

    def list_jobs(
        self, after: str | None, limit: int | None, metadata: dict[str, str]
    ) -> dict[str, Any]:
        rows = [
            r
            for r in self.store.ft_jobs()
            if all((r.request.get("metadata") or {}).get(k) == v for k, v in metadata.items())
        ]
        items = [job_object(r, self._record(r, poll=False)) for r in rows]
        return page(items, after, limit, "jobs")

    def cancel(self, job_id: str) -> dict[str, Any]:
        from gateway.facade.jobs import Job

        row = self._row(job_id)
        with Journal(self.journal_path) as journal:
            rec = Job(job_id, journal).record
            if rec.terminal:
                raise ApiError(
                    400, f"the job is already {rec.state}", param=None, code="invalid_state"
                )
            Job(job_id, journal).cancel()
        return job_object(row, self._record(row, poll=False))

    def events(self, job_id: str, after: str | None, limit: int | None) -> dict[str, Any]:
        row = self._row(job_id)
        self._record(row, poll=True)  # journals what the backend reported since
        with Journal(self.journal_path) as journal:
            events = journal.events(job_id)
        items = [event_object(ev) for ev in reversed(events)]  # newest first
        return page(items, after, limit, "events")

    def checkpoints(self, job_id: str, after: str | None, limit: int | None) -> dict[str, Any]:
        from providers.jobdir import JobDir

        row = self._row(job_id)
        rec = self._record(row, poll=False)
        items: list[dict[str, Any]] = []
        jobdir = (rec.remote or {}).get("jobdir")
        if jobdir:
            job = JobDir(Path(jobdir))
            by_step = {m.get("step"): m for m in job.metrics() if m.get("step") is not None}
            done = job.complete_checkpoints()
            for path in sorted(done, key=lambda p: -int(p.name.rsplit("-", 1)[1])):
                step = int(path.name.rsplit("-", 1)[1])
                metrics = by_step.get(step) or {}
                items.append(
                    {
                        "id": f"ftckpt-{job_id}-{step}",
                        "object": "fine_tuning.job.checkpoint",
                        "created_at": int(path.stat().st_mtime),
                        "fine_tuning_job_id": job_id,
                        "fine_tuned_model_checkpoint": f"{row.fine_tuned_model}:ckpt-step-{step}",
                        "step_number": step,
                        "metrics": {
                            "step": step,
                            "train_loss": metrics.get("loss"),
                            "valid_loss": metrics.get("eval_loss"),
                        },
                    }
                )
        return page(items, after, limit, "checkpoints")

    # deploy on success --------------------------------------------------------------------
    def _deploy_in_background(self, row: FtJob) -> None:
        if not self.store.ft_update(row.request_key, expect="launched", state="deploying"):
            return  # another request started it
        threading.Thread(
            target=self._deploy, args=(row,), name=f"ft-deploy-{row.job_id}", daemon=True
        ).start()

    def _deploy(self, row: FtJob) -> None:
        from gateway.facade.deploy import deploy

        assert row.job_id is not None
        try:
            with Journal(self.journal_path) as journal:
                target = row.deploy_to or serving_target(journal.get(row.job_id).provider)
                dep = deploy(row.job_id, target, name=row.fine_tuned_model, journal=journal)
            result = self._result_file(row)
            self.store.ft_update(
                row.request_key, state="deployed", deployment_id=dep.id, result_file=result
            )
        except Exception as exc:  # any failure is shown on the job, never lost in a thread
            message = (
                exc.message if isinstance(exc, TunegateError) else f"{type(exc).__name__}: {exc}"
            )
            self.store.ft_update(
                row.request_key,
                state="deploy_failed",
                error={
                    "code": "deploy_failed",
                    "message": f"trained, but not deployed: {message}",
                    "param": None,
                },
            )

    def _result_file(self, row: FtJob) -> str | None:
        """A metrics CSV (step, train_loss, valid_loss), as OpenAI's `result_files[0]`."""
        assert row.job_id is not None
        with Journal(self.journal_path) as journal:
            events = journal.events(row.job_id)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["step", "train_loss", "valid_loss"])
        for ev in events:
            data = ev.data or {}
            if ev.step is not None and (
                data.get("loss") is not None or data.get("eval_loss") is not None
            ):
                writer.writerow([ev.step, data.get("loss", ""), data.get("eval_loss", "")])
        stored = self.store.add_file(
            f"step_metrics_{row.job_id}.csv",
            "fine-tune-results",
            out.getvalue().encode(),
            self.files_dir,
            "processed",
            None,
            row.key_id,
        )
        return stored.id
