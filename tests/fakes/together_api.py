"""Together's fine-tuning REST API as the official `together` SDK calls it (../shared/reference/
provider-contracts.md section 2): the 3-step upload (302 + presigned PUT + preprocess), model
limits, estimate-price, jobs with ISO timestamps, events, metrics, checkpoints, cancel, and the
archive download with `Range` (206 + Content-Range).

Jobs advance one stage per retrieve: pending -> queued -> running (one step per retrieve) ->
uploading -> completed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import json
import tarfile
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
from tests.fakes.together_v2 import TogetherV2

TOTAL_STEPS = 3
PRICE_PER_TOKEN_NANO = 480  # $0.48 / 1M tokens, in nanodollars per token


def _iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def adapter_archive(members: dict[str, bytes] | None = None) -> bytes:
    """A zstd tar of a PEFT adapter directory, the way Together ships adapters."""
    import zstandard

    members = members or {
        "adapter_config.json": json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 16}).encode(),
        "adapter_model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(4096),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor().compress(buf.getvalue())


class TogetherFake(FakeAPI):
    def __init__(self, faults: Faults | None = None):
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.archive = adapter_archive()
        self.truncate_next_download = False
        self.downloads: list[str | None] = []  # checkpoint kind asked for, per download request
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.v2 = TogetherV2(lambda: self.base_url)
        routes = [
            ("GET", r"/v1/fine-tunes/models/limits", self.limits),
            ("POST", r"/v1/fine-tunes/estimate-price", self.estimate),
            ("POST", r"/v1/files", self.start_upload),
            ("PUT", r"/storage/(?P<id>[^/]+)", self.put_bytes),
            ("POST", r"/v1/files/(?P<id>[^/]+)/preprocess", self.preprocess),
            ("GET", r"/v1/files/(?P<id>[^/]+)", self.retrieve_file),
            ("POST", r"/v1/fine-tunes", self.create_job),
            ("GET", r"/v1/fine-tunes", self.list_jobs),
            ("GET", r"/v1/fine-tunes/(?P<id>[^/]+)", self.retrieve_job),
            ("POST", r"/v1/fine-tunes/(?P<id>[^/]+)/cancel", self.cancel_job),
            ("GET", r"/v1/fine-tunes/(?P<id>[^/]+)/events", self.list_events),
            ("GET", r"/v1/fine-tunes/(?P<id>[^/]+)/metrics", self.list_metrics),
            ("GET", r"/v1/fine-tunes/(?P<id>[^/]+)/checkpoints", self.list_checkpoints),
            ("GET", r"/v1/finetune/download", self.download),
            ("POST", r"/v1/chat/completions", self.chat),
            *self.v2.routes(),
        ]
        faults = faults or Faults()
        faults.exempt = (
            *faults.exempt,
            r"^/storage/",
            r"^/v2-storage/",
        )  # presigned storage is not Together's API
        self.server = FakeServer(routes, faults, creates=("POST /v1/fine-tunes",))

    def sdk_env(self) -> dict[str, str]:
        return {"TOGETHER_BASE_URL": self.base_url, "TOGETHER_API_KEY": SECRET}

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):08x}-0000-4000-8000-000000000000"

    # limits and price ------------------------------------------------------------------------
    def limits(self, req: Request) -> Reply:
        lora = {
            "default_rank": 8,
            "max_rank": 64,
            "min_batch_size": 8,
            "max_batch_size": 32,
            "max_batch_size_dpo": 16,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        }
        return Reply(
            200,
            {
                "model_name": req.query.get("model_name"),
                "lora_training": lora,
                "full_training": {
                    "min_batch_size": 8,
                    "max_batch_size": 32,
                    "max_batch_size_dpo": 16,
                },
                "max_seq_length_sft": 8192,
                "max_seq_length_dpo": 8192,
                "min_max_seq_length": 512,
                "max_num_epochs": 20,
                "max_num_evals": 100,
                "max_num_checkpoints": 20,
                "min_learning_rate": 1e-7,
                "max_learning_rate": 1.0,
                "default_gradient_accumulation_steps": 1,
                "merge_output_lora": True,
                "supports_full_training": True,
                "supports_vision": False,
                "supports_tools": True,
                "supports_reasoning": False,
            },
        )

    def _tokens(self, file_id: str) -> int:
        return len(self.contents.get(file_id, b"")) // 4

    def estimate(self, req: Request) -> Reply:
        body = req.json()
        if body.get("training_file") not in self.files:
            return Reply(
                200, {"estimation_available": False, "unavailable_reason": "train_file_invalid"}
            )
        tokens = self._tokens(body["training_file"]) * int(body.get("n_epochs") or 1)
        return Reply(
            200,
            {
                "estimation_available": True,
                "estimated_total_price": round(tokens * PRICE_PER_TOKEN_NANO / 1e9, 6),
                "allowed_to_proceed": True,
                "user_limit": 100,
                "estimated_train_token_count": tokens,
                "estimated_eval_token_count": 0,
            },
        )

    # files ----------------------------------------------------------------------------------
    def _file_obj(self, file_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.files[file_id].items() if not k.startswith("_")}

    def start_upload(self, req: Request) -> Reply:
        form = req.form()
        for f in self.files.values():
            if f["_checksum"] == form.get("checksum") and f["processing_status"] == "COMPLETED":
                return Reply(409, {"file_id": f["id"], "message": "file already exists"})
        file_id = self._id("file")
        self.files[file_id] = {
            "id": file_id,
            "bytes": 0,
            "created_at": int(time.time()),
            "filename": form.get("file_name"),
            "FileType": form.get("file_type"),
            "object": "file",
            "purpose": form.get("purpose"),
            "processing_status": "PENDING",
            "_checksum": form.get("checksum"),
        }
        return Reply(
            302,
            None,
            {"Location": f"{self.base_url}/storage/{file_id}", "X-Together-File-Id": file_id},
        )

    def put_bytes(self, req: Request) -> Reply:
        file_id = req.match["id"]
        if "authorization" in req.headers:
            return Reply(400, {"error": "presigned URLs take no Authorization header"})
        self.contents[file_id] = req.body
        self.files[file_id]["bytes"] = len(req.body)
        return Reply(200, None)

    def preprocess(self, req: Request) -> Reply:
        file_id = req.match["id"]
        data = self.contents.get(file_id)
        if data is None or hashlib.sha256(data).hexdigest() != self.files[file_id]["_checksum"]:
            return Reply(400, {"error": {"message": "uploaded bytes do not match the checksum"}})
        self.files[file_id]["processing_status"] = "COMPLETED"
        return Reply(200, self._file_obj(file_id))

    def retrieve_file(self, req: Request) -> Reply:
        if req.match["id"] not in self.files:
            return Reply(404, {"error": {"message": "no such file"}})
        return Reply(200, self._file_obj(req.match["id"]))

    # jobs -----------------------------------------------------------------------------------
    def create_job(self, req: Request) -> Reply:
        body = req.json()
        if body.get("training_file") not in self.files:
            return Reply(400, {"error": {"message": "training_file not found"}})
        with self._lock:
            job_id = self._id("ft")
            suffix = body.get("suffix") or ""
            self.jobs[job_id] = {
                "id": job_id,
                "status": "pending",
                "created_at": _iso(),
                "updated_at": _iso(),
                "model": body["model"],
                "training_file": body["training_file"],
                "validation_file": body.get("validation_file") or "",
                "model_output_name": f"fakeuser/{body['model'].split('/')[-1]}-{suffix}",
                "suffix": suffix,
                "training_type": body.get("training_type"),
                "training_method": body.get("training_method"),
                "n_epochs": body.get("n_epochs"),
                "learning_rate": body.get("learning_rate"),
                "batch_size": body.get("batch_size"),
                "_steps_completed": 0,  # not in FinetuneResponse: seen only through metrics
                "events": [],
                "_events": [self._event("job_pending", "Fine tune request created")],
                "_tokens": self._tokens(body["training_file"]) * int(body.get("n_epochs") or 1),
            }
        return Reply(200, self._public(self.jobs[job_id]))

    @staticmethod
    def _event(kind: str, message: str, level: str = "info") -> dict[str, Any]:
        return {
            "object": "fine-tune-event",
            "created_at": _iso(),
            "message": message,
            "type": kind,
            "level": level,
        }

    @staticmethod
    def _public(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _advance(self, job: dict[str, Any]) -> None:
        status, events = job["status"], job["_events"]
        if status == "pending":
            job["status"] = "queued"
        elif status == "queued":
            job["status"] = "running"
            events.append(self._event("training_start", "Training started"))
        elif status == "running":
            job["_steps_completed"] += 1
            if job["_steps_completed"] >= TOTAL_STEPS:
                job["status"] = "uploading"
                events.append(self._event("model_uploading", "Uploading model"))
        elif status == "uploading":
            job["status"] = "completed"
            job["token_count"] = job["_tokens"]
            job["total_price"] = job["_tokens"] * PRICE_PER_TOKEN_NANO
            events.append(self._event("job_complete", "Job finished"))
        job["updated_at"] = _iso()

    def retrieve_job(self, req: Request) -> Reply:
        job = self.jobs.get(req.match["id"])
        if job is None:
            return Reply(404, {"error": {"message": "no such job"}})
        with self._lock:
            if job["status"] not in ("completed", "cancelled", "error", "user_error"):
                self._advance(job)
        return Reply(200, self._public(job))

    def list_jobs(self, req: Request) -> Reply:
        return Reply(200, {"data": [self._public(j) for j in self.jobs.values()]})

    def cancel_job(self, req: Request) -> Reply:
        job = self.jobs[req.match["id"]]
        job["status"] = "cancelled"
        job["_events"].append(self._event("cancel_requested", "Cancelled by user"))
        return Reply(200, self._public(job))

    def list_events(self, req: Request) -> Reply:
        return Reply(200, {"data": self.jobs[req.match["id"]]["_events"]})

    def list_metrics(self, req: Request) -> Reply:
        job = self.jobs[req.match["id"]]
        rows = [
            {"global_step": float(s), "train_loss": 2.0 / s}
            for s in range(1, job["_steps_completed"] + 1)
        ]
        return Reply(200, {"metrics": rows})

    def list_checkpoints(self, req: Request) -> Reply:
        job = self.jobs[req.match["id"]]
        data = []
        if job["status"] == "completed":
            data.append(
                {
                    "checkpoint_type": "final",
                    "created_at": _iso(),
                    "path": f"s3://fake/{job['id']}/final",
                    "step": TOTAL_STEPS,
                    "checkpoint": "adapter",
                }
            )
        return Reply(200, {"data": data})

    def download(self, req: Request) -> Reply:
        job = self.jobs.get(req.query.get("ft_id", ""))
        if job is None or job["status"] != "completed":
            return Reply(400, {"error": {"message": "job is not downloadable"}})
        self.downloads.append(req.query.get("checkpoint"))
        data, total = self.archive, len(self.archive)
        headers = {"content-type": "application/octet-stream"}
        start = 0
        rng = req.headers.get("range", "")
        if rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start = int(first)
            end = int(last) if last else total - 1
            headers["content-range"] = f"bytes {start}-{end}/{total}"
            body = data[start : end + 1]
            status = 206
        else:
            body, status = data, 200
        reply = Reply(status, body, headers)
        if self.truncate_next_download and len(body) > 10:
            self.truncate_next_download = False
            reply.truncate_at = len(body) // 2
        return reply

    # serverless LoRA: a completed LoRA job's output model answers chat on its base's pool
    serverless_bases = ("meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",)

    def chat(self, req: Request) -> Reply:
        body = req.json()
        model = body.get("model")
        job = next((j for j in self.jobs.values() if j["model_output_name"] == model), None)
        if self.v2.serves(model):
            return self._answer(model, body)
        if job is None or job["status"] != "completed":
            return Reply(404, {"error": {"message": f"Unable to access model {model}"}})
        lora = (job.get("training_type") or {}).get("type") == "Lora"
        if not lora or job["model"] not in self.serverless_bases:
            return Reply(
                400,
                {
                    "error": {
                        "message": f"{model} is not available serverless; create a dedicated endpoint"
                    }
                },
            )
        return self._answer(model, body)

    def _answer(self, model: str, body: dict[str, Any]) -> Reply:
        return chat_reply(model, body["messages"][-1]["content"], body)
