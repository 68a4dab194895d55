"""Fireworks' REST API as the official `fireworks-ai` SDK calls it (../shared/reference/
provider-contracts.md section 3): resources under `/v1/accounts/{acct}`, camelCase JSON,
Google-AIP colon verbs (`/datasets/{id}:upload`), client-chosen ids in the query string
(`?supervisedFineTuningJobId=`), 409 ALREADY_EXISTS on a repeated id, list pages with
`pageSize`/`pageToken`/`nextPageToken`, and signed download URLs for a model's files.

Jobs advance one stage per GET: CREATING -> PENDING -> RUNNING (33 %, 66 %) -> COMPLETED, and
the output model (a PEFT adapter) appears when the job completes.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from tests.fakes._server import SECRET, FakeAPI, FakeServer, Faults, Reply, Request
from tests.fakes.fireworks_serving import ServingRoutes, _error, _iso

STAGES = [
    ("JOB_STATE_CREATING", None),
    ("JOB_STATE_PENDING", None),
    ("JOB_STATE_RUNNING", 33),
    ("JOB_STATE_RUNNING", 66),
    ("JOB_STATE_COMPLETED", 100),
]
NANOS_PER_TOKEN = 500  # $0.50 / 1M tokens
_ID = r"(?P<id>[a-z0-9][a-z0-9-]*)"
_ACCT = r"/v1/accounts/(?P<acct>[^/]+)"


def adapter_files(rank: int = 8) -> dict[str, bytes]:
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": ["q_proj"]}
    return {
        "adapter_config.json": json.dumps(config).encode(),
        "adapter_model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(8192),
    }


class FireworksFake(ServingRoutes, FakeAPI):
    page_size_cap = 2  # small pages, so listing really paginates

    def __init__(self, faults: Faults | None = None, account: str = "acme"):
        self.account = account
        self.datasets: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}  # SFT and DPO jobs, by id
        self.models: dict[str, dict[str, bytes]] = {}
        self.downloadable = True
        self.model_meta: dict[str, dict[str, Any]] = {}  # uploaded models: kind, state, details
        self.deployments: dict[str, dict[str, Any]] = {}
        self.deployed: dict[str, dict[str, Any]] = {}
        self.truncate_next_download = False
        self._lock = threading.Lock()
        routes = [
            ("POST", rf"{_ACCT}/datasets", self.create_dataset),
            ("GET", rf"{_ACCT}/datasets/{_ID}", self.get_dataset),
            ("POST", rf"{_ACCT}/datasets/{_ID}:upload", self.upload),
            ("POST", rf"{_ACCT}/datasets/{_ID}:validateUpload", self.validate),
            ("POST", rf"{_ACCT}/(?P<kind>supervisedFineTuningJobs|dpoJobs)", self.create_job),
            ("GET", rf"{_ACCT}/(?P<kind>supervisedFineTuningJobs|dpoJobs)", self.list_jobs),
            ("GET", rf"{_ACCT}/(?P<kind>supervisedFineTuningJobs|dpoJobs)/{_ID}", self.get_job),
            (
                "POST",
                rf"{_ACCT}/(?P<kind>supervisedFineTuningJobs|dpoJobs)/{_ID}:cancel",
                self.cancel_job,
            ),
            ("GET", rf"{_ACCT}/models/{_ID}:getDownloadEndpoint", self.download_endpoint),
            ("GET", r"/signed/(?P<model>[^/]+)/(?P<name>[^/]+)", self.signed_get),
            ("POST", rf"{_ACCT}/models", self.create_model),
            ("GET", rf"{_ACCT}/models/{_ID}", self.get_model),
            ("POST", rf"{_ACCT}/models/{_ID}:getUploadEndpoint", self.upload_endpoint),
            ("GET", rf"{_ACCT}/models/{_ID}:validateUpload", self.validate_model),
            ("PUT", r"/signed-put/(?P<model>[^/]+)/(?P<name>[^/]+)", self.signed_put),
            ("POST", rf"{_ACCT}/deployments", self.create_deployment),
            ("GET", rf"{_ACCT}/deployments/{_ID}", self.get_deployment),
            ("DELETE", rf"{_ACCT}/deployments/{_ID}", self.delete_deployment),
            ("POST", rf"{_ACCT}/deployedModels", self.load_lora),
            ("GET", rf"{_ACCT}/deployedModels/{_ID}", self.get_deployed),
            ("DELETE", rf"{_ACCT}/deployedModels/{_ID}", self.unload_lora),
            ("POST", r"/v1/chat/completions", self.chat),
        ]
        faults = faults or Faults()
        faults.exempt = (*faults.exempt, r"^/signed")  # signed storage is not Fireworks' API
        creates = (
            rf"POST {_ACCT}/supervisedFineTuningJobs",
            rf"POST {_ACCT}/dpoJobs",
        )
        self.server = FakeServer(routes, faults, creates=creates)

    max_wait_s = 0.3

    def sdk_env(self) -> dict[str, str]:
        return {
            "FIREWORKS_BASE_URL": self.base_url,
            "FIREWORKS_API_KEY": SECRET,
            "FIREWORKS_ACCOUNT_ID": self.account,
        }

    # datasets -------------------------------------------------------------------------------
    def create_dataset(self, req: Request) -> Reply:
        if denied := self._account(req):
            return denied
        body = req.json()
        ident = body.get("datasetId")
        if not ident:
            return _error(400, "INVALID_ARGUMENT", "datasetId is required")
        with self._lock:
            if ident in self.datasets:
                return _error(409, "ALREADY_EXISTS", f"dataset {ident} already exists")
            ds = {
                "name": self._name("datasets", ident),
                "state": "UPLOADING",
                "createTime": _iso(),
                **{k: v for k, v in (body.get("dataset") or {}).items()},
            }
            self.datasets[ident] = ds
        return Reply(200, ds)

    def get_dataset(self, req: Request) -> Reply:
        ds = self.datasets.get(req.match["id"])
        return Reply(200, ds) if ds else _error(404, "NOT_FOUND", "no such dataset")

    def upload(self, req: Request) -> Reply:
        ident = req.match["id"]
        if ident not in self.datasets:
            return _error(404, "NOT_FOUND", "no such dataset")
        part = req.form().get("file")
        if not isinstance(part, tuple):
            return _error(400, "INVALID_ARGUMENT", "multipart field 'file' is required")
        filename, data = part
        self.contents[ident] = data
        return Reply(200, {"id": ident, "bytes": len(data), "filename": filename})

    def validate(self, req: Request) -> Reply:
        ident = req.match["id"]
        ds, data = self.datasets.get(ident), self.contents.get(ident)
        if ds is None or data is None:
            return _error(400, "FAILED_PRECONDITION", "nothing uploaded")
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        for i, row in enumerate(lines, 1):
            if not ("messages" in row or {"input", "preferred_output"} <= set(row)):
                return _error(400, "INVALID_ARGUMENT", f"line {i}: not a chat or preference row")
        if str(len(lines)) != str(ds.get("exampleCount", len(lines))):
            return _error(400, "INVALID_ARGUMENT", "exampleCount does not match the file")
        ds["state"] = "READY"
        return Reply(200, {})

    # jobs -------------------------------------------------------------------------------------
    def create_job(self, req: Request) -> Reply:
        if denied := self._account(req):
            return denied
        kind = req.match["kind"]
        id_param = "dpoJobId" if kind == "dpoJobs" else "supervisedFineTuningJobId"
        ident = req.query.get(id_param) or f"srv-{len(self.jobs) + 1}"
        body = req.json()
        ds_id = str(body.get("dataset", "")).rsplit("/", 1)[-1]
        if self.datasets.get(ds_id, {}).get("state") != "READY":
            return _error(400, "FAILED_PRECONDITION", f"dataset {ds_id} is not READY")
        config = body.get("trainingConfig", body) if kind == "dpoJobs" else body
        if not config.get("baseModel"):
            return _error(400, "INVALID_ARGUMENT", "baseModel or warmStartFrom is required")
        rank = config.get("loraRank", 8)
        if not 4 <= rank <= 64:
            return _error(400, "INVALID_ARGUMENT", f"loraRank {rank} out of range [4, 64]")
        with self._lock:
            if ident in self.jobs:
                return _error(409, "ALREADY_EXISTS", f"job {ident} already exists")
            job = {
                **body,
                "name": self._name(kind, ident),
                "state": STAGES[0][0],
                "createTime": _iso(),
                "_kind": kind,
                "_polls": 0,
                "_tokens": len(self.contents.get(ds_id, b"")) // 4 * int(config.get("epochs", 1)),
            }
            config.setdefault("outputModel", ident)
            self.jobs[ident] = job
        return Reply(200, self._public(job))

    def _public(self, job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _advance(self, job: dict[str, Any]) -> None:
        if job["state"] in ("JOB_STATE_CANCELLED", "JOB_STATE_FAILED", "JOB_STATE_COMPLETED"):
            return
        job["_polls"] = min(job["_polls"] + 1, len(STAGES) - 1)
        state, percent = STAGES[job["_polls"]]
        job["state"], job["updateTime"] = state, _iso()
        if job["_kind"] == "supervisedFineTuningJobs" and percent is not None:
            job["jobProgress"] = {"percent": percent, "epoch": 1}
        if state == "JOB_STATE_COMPLETED":
            config = job.get("trainingConfig", job)
            model = config["outputModel"]
            self.models[model] = adapter_files(config.get("loraRank", 8))
            job["completedTime"] = _iso()
            if job["_kind"] == "supervisedFineTuningJobs":
                nanos = job["_tokens"] * NANOS_PER_TOKEN
                job["estimatedCost"] = {
                    "currencyCode": "USD",
                    "units": str(nanos // 10**9),
                    "nanos": nanos % 10**9,
                }

    def get_job(self, req: Request) -> Reply:
        with self._lock:
            job = self.jobs.get(req.match["id"])
            if job is None or job["_kind"] != req.match["kind"]:
                return _error(404, "NOT_FOUND", f"job {req.match['id']} not found")
            self._advance(job)
            return Reply(200, self._public(job))

    def list_jobs(self, req: Request) -> Reply:
        kind = req.match["kind"]
        size = min(int(req.query.get("pageSize", 50)), self.page_size_cap)
        start = int(req.query.get("pageToken") or 0)
        rows = [self._public(j) for _, j in sorted(self.jobs.items()) if j["_kind"] == kind]
        page = rows[start : start + size]
        more = start + size < len(rows)
        return Reply(200, {kind: page, "nextPageToken": str(start + size) if more else ""})

    def cancel_job(self, req: Request) -> Reply:
        with self._lock:
            job = self.jobs.get(req.match["id"])
            if job is None:
                return _error(404, "NOT_FOUND", "no such job")
            if job["state"] != "JOB_STATE_COMPLETED":
                job["state"] = "JOB_STATE_CANCELLED"
        return Reply(200, {})

    # models -----------------------------------------------------------------------------------
    def download_endpoint(self, req: Request) -> Reply:
        model = req.match["id"]
        if model not in self.models:
            return _error(404, "NOT_FOUND", f"model {model} not found")
        if not self.downloadable:
            return _error(403, "PERMISSION_DENIED", "downloads are not enabled for this model")
        urls = {name: f"{self.base_url}/signed/{model}/{name}?sig=x" for name in self.models[model]}
        return Reply(200, {"filenameToSignedUrls": urls})

    def signed_get(self, req: Request) -> Reply:
        data = self.models.get(req.match["model"], {}).get(req.match["name"])
        if data is None:
            return Reply(404, b"no such object")
        if req.headers.get("authorization"):
            return Reply(400, b"signed URLs take no Authorization header")
        start = 0
        if rng := req.headers.get("range"):
            start = int(rng.removeprefix("bytes=").split("-")[0])
        body = data[start:]
        headers = {"content-range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if start else {}
        reply = Reply(206 if start else 200, body, headers)
        if self.truncate_next_download and not start:
            self.truncate_next_download = False
            reply.truncate_at = len(body) // 2
        return reply
