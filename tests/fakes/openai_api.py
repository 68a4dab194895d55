"""OpenAI's fine-tuning REST API as the official `openai` SDK calls it (../shared/reference/
provider-contracts.md section 1): files, uploads, jobs with metadata filters and cursor pages,
events (newest first, metrics events carry step and train_loss), checkpoints, cancel.

Jobs advance one stage per retrieve: validating_files -> queued -> running (one training step
per retrieve) -> succeeded.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

from tests.fakes._server import (
    SECRET,
    FakeAPI,
    FakeServer,
    Faults,
    Reply,
    Request,
    chat_reply,
)

TOTAL_STEPS = 4


class OpenAIFake(FakeAPI):
    def __init__(self, faults: Faults | None = None):
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.parts: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.fail_next_job = False
        self.on_create: threading.Event = threading.Event()
        self.hold_create_s = 0.0  # answer creates this late (to kill a client mid-request)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        routes = [
            ("POST", r"/v1/files", self.create_file),
            ("GET", r"/v1/files/(?P<id>[^/]+)", self.retrieve_file),
            ("GET", r"/v1/files/(?P<id>[^/]+)/content", self.file_content),
            ("POST", r"/v1/uploads", self.create_upload),
            ("POST", r"/v1/uploads/(?P<id>[^/]+)/parts", self.add_part),
            ("POST", r"/v1/uploads/(?P<id>[^/]+)/complete", self.complete_upload),
            ("POST", r"/v1/fine_tuning/jobs", self.create_job),
            ("GET", r"/v1/fine_tuning/jobs", self.list_jobs),
            ("GET", r"/v1/fine_tuning/jobs/(?P<id>[^/]+)", self.retrieve_job),
            ("POST", r"/v1/fine_tuning/jobs/(?P<id>[^/]+)/cancel", self.cancel_job),
            ("GET", r"/v1/fine_tuning/jobs/(?P<id>[^/]+)/events", self.list_events),
            ("GET", r"/v1/fine_tuning/jobs/(?P<id>[^/]+)/checkpoints", self.list_checkpoints),
            ("POST", r"/v1/chat/completions", self.chat),
        ]
        self.server = FakeServer(routes, faults, creates=("POST /v1/fine_tuning/jobs",))

    def sdk_env(self) -> dict[str, str]:
        return {"OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": SECRET}

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):06d}"

    @staticmethod
    def _error(status: int, message: str, param: str | None = None) -> Reply:
        return Reply(
            status,
            {"error": {"message": message, "type": "invalid_request_error", "param": param}},
        )

    # files ----------------------------------------------------------------------------------
    def _file(self, name: str, data: bytes, purpose: str) -> dict[str, Any]:
        file_id = self._id("file")
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
        }
        self.files[file_id], self.contents[file_id] = obj, data
        return obj

    def create_file(self, req: Request) -> Reply:
        form = req.form()
        if form.get("purpose") != "fine-tune" or not isinstance(form.get("file"), tuple):
            return self._error(400, "expected a file part and purpose=fine-tune")
        name, data = form["file"]
        for i, line in enumerate(data.decode().splitlines(), 1):
            try:
                json.loads(line)
            except ValueError:
                return self._error(400, f"line {i} is not JSON", "file")
        return Reply(200, self._file(name, data, "fine-tune"))

    def retrieve_file(self, req: Request) -> Reply:
        found = self.files.get(req.match["id"])
        return Reply(200, found) if found else self._error(404, "No such File object")

    def file_content(self, req: Request) -> Reply:
        data = self.contents.get(req.match["id"])
        if data is None:
            return self._error(404, "No such File object")
        return Reply(200, data, {"content-type": "application/octet-stream"})

    def create_upload(self, req: Request) -> Reply:
        body = req.json()
        up_id = self._id("upload")
        self.uploads[up_id] = {
            "id": up_id,
            "object": "upload",
            "bytes": body["bytes"],
            "created_at": int(time.time()),
            "expires_at": int(time.time()) + 3600,
            "filename": body["filename"],
            "purpose": body["purpose"],
            "status": "pending",
            "parts": [],
        }
        return Reply(200, {k: v for k, v in self.uploads[up_id].items() if k != "parts"})

    def add_part(self, req: Request) -> Reply:
        upload = self.uploads[req.match["id"]]
        _, data = req.form()["data"]
        part_id = self._id("part")
        self.parts[part_id] = data
        upload["parts"].append(part_id)
        return Reply(
            200,
            {
                "id": part_id,
                "object": "upload.part",
                "created_at": int(time.time()),
                "upload_id": upload["id"],
            },
        )

    def complete_upload(self, req: Request) -> Reply:
        upload = self.uploads[req.match["id"]]
        data = b"".join(self.parts[p] for p in req.json()["part_ids"])
        if len(data) != upload["bytes"]:
            return self._error(400, f"parts hold {len(data)} bytes, expected {upload['bytes']}")
        upload["status"] = "completed"
        upload["file"] = self._file(upload["filename"], data, upload["purpose"])
        return Reply(200, {k: v for k, v in upload.items() if k != "parts"})

    # jobs -----------------------------------------------------------------------------------
    def create_job(self, req: Request) -> Reply:
        body = req.json()
        if body.get("training_file") not in self.files:
            return self._error(400, "training_file not found", "training_file")
        if not str(body.get("model", "")).startswith("gpt-"):
            return self._error(400, f"model {body.get('model')} cannot be fine-tuned", "model")
        with self._lock:
            job_id = self._id("ftjob")
            method = body.get("method") or {"type": "supervised"}
            hyper = (method.get(method["type"]) or {}).get("hyperparameters", {})
            self.jobs[job_id] = {
                "id": job_id,
                "object": "fine_tuning.job",
                "created_at": int(time.time()),
                "model": body["model"],
                "organization_id": "org-fake",
                "status": "validating_files",
                "training_file": body["training_file"],
                "validation_file": body.get("validation_file"),
                "hyperparameters": {
                    "n_epochs": hyper.get("n_epochs", "auto"),
                    "batch_size": hyper.get("batch_size", "auto"),
                    "learning_rate_multiplier": hyper.get("learning_rate_multiplier", "auto"),
                },
                "result_files": [],
                "seed": body.get("seed", 0),
                "fine_tuned_model": None,
                "finished_at": None,
                "trained_tokens": None,
                "error": None,
                "metadata": body.get("metadata"),
                "method": method,
                "suffix": body.get("suffix"),
                "_step": 0,
                "_fail": self.fail_next_job,
            }
            self.fail_next_job = False
            self.events[job_id] = []
            self._event(job_id, "Validating training file", "message")
        self.on_create.set()
        if self.hold_create_s:
            time.sleep(self.hold_create_s)
        return Reply(200, self._public(self.jobs[job_id]))

    def _event(self, job_id: str, message: str, kind: str, data: dict | None = None) -> None:
        self.events[job_id].append(
            {
                "id": f"ftevent-{job_id}-{len(self.events[job_id]):03d}",
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()),
                "level": "info",
                "message": message,
                "type": kind,
                "data": data or {},
            }
        )

    @staticmethod
    def _public(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not k.startswith("_") and k != "suffix"}

    def _advance(self, job: dict[str, Any]) -> None:
        status = job["status"]
        if status == "validating_files":
            job["status"] = "queued"
        elif status == "queued":
            job["status"] = "running"
            self._event(job["id"], "Fine-tuning job started", "message")
        elif status == "running":
            if job["_fail"]:
                job["status"] = "failed"
                job["error"] = {
                    "code": "invalid_training_file",
                    "message": "bad file",
                    "param": None,
                }
                return
            job["_step"] += 1
            step = job["_step"]
            self._event(
                job["id"],
                f"Step {step}/{TOTAL_STEPS}: training loss={2.0 / step:.3f}",
                "metrics",
                {"step": step, "train_loss": 2.0 / step, "total_steps": TOTAL_STEPS},
            )
            if step >= TOTAL_STEPS:
                job["status"] = "succeeded"
                job["finished_at"] = int(time.time())
                job["trained_tokens"] = 12_345
                job["fine_tuned_model"] = (
                    f"ft:{job['model']}:org-fake:{job['suffix'] or 'model'}:{job['id'][-6:]}"
                )
                self._event(job["id"], "The job has successfully completed", "message")

    def retrieve_job(self, req: Request) -> Reply:
        job = self.jobs.get(req.match["id"])
        if job is None:
            return self._error(404, "no such job")
        with self._lock:
            if job["status"] not in ("succeeded", "failed", "cancelled"):
                self._advance(job)
        return Reply(200, self._public(job))

    def list_jobs(self, req: Request) -> Reply:
        wanted = {k[9:-1]: v for k, v in req.query.items() if k.startswith("metadata[")}
        jobs = [
            self._public(j)
            for j in sorted(self.jobs.values(), key=lambda j: j["id"], reverse=True)
            if all((j["metadata"] or {}).get(k) == v for k, v in wanted.items())
        ]
        after = req.query.get("after")
        if after:
            ids = [j["id"] for j in jobs]
            jobs = jobs[ids.index(after) + 1 :] if after in ids else []
        limit = int(req.query.get("limit", 20))
        return Reply(200, {"object": "list", "data": jobs[:limit], "has_more": len(jobs) > limit})

    def cancel_job(self, req: Request) -> Reply:
        job = self.jobs[req.match["id"]]
        if job["status"] in ("succeeded", "failed"):
            return self._error(400, f"job is {job['status']}")
        job["status"] = "cancelled"
        self._event(job["id"], "Job cancelled", "message")
        return Reply(200, self._public(job))

    def list_events(self, req: Request) -> Reply:
        events = list(reversed(self.events[req.match["id"]]))  # newest first
        limit = int(req.query.get("limit", 20))
        return Reply(
            200, {"object": "list", "data": events[:limit], "has_more": len(events) > limit}
        )

    def list_checkpoints(self, req: Request) -> Reply:
        job = self.jobs[req.match["id"]]
        data = []
        if job["status"] == "succeeded":
            data.append(
                {
                    "id": f"ftckpt-{job['id']}",
                    "object": "fine_tuning.job.checkpoint",
                    "created_at": int(time.time()),
                    "fine_tuned_model_checkpoint": f"{job['fine_tuned_model']}:ckpt-step-{TOTAL_STEPS}",
                    "fine_tuning_job_id": job["id"],
                    "step_number": TOTAL_STEPS,
                    "metrics": {"step": TOTAL_STEPS, "train_loss": 0.5},
                }
            )
        return Reply(200, {"object": "list", "data": data, "has_more": False})

    def chat(self, req: Request) -> Reply:
        """Chat with a fine-tuned model this fake made (others are 404, as for a wrong id)."""
        body = req.json()
        model = body.get("model")
        if model not in {j.get("fine_tuned_model") for j in self.jobs.values()}:
            return self._error(404, f"The model `{model}` does not exist", "model")
        return chat_reply(model, body["messages"][-1]["content"], body)
