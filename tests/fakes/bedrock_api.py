"""AWS for the Bedrock tests: moto in server mode (real HTTP, so boto3's real transport is used)
for S3 and the model-customization calls, behind a small front server that

- injects the same faults as the other fakes (boto3 sees real 429/5xx, drops and timeouts),
- serves the calls moto 5.2.5 lacks (`GetFoundationModel`),
- advances jobs through moto's backend (moto leaves every job `InProgress`) and, when one
  completes, writes the step-wise metrics CSV Bedrock puts under the output prefix,
- serves Custom Model Import (jobs, imported models) and the runtime's Converse, answered by
  transformers running the imported weights read back from moto's S3.

S3 goes to moto directly (`AWS_ENDPOINT_URL`); Bedrock and the runtime through the front
(`AWS_ENDPOINT_URL_BEDROCK`, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`).
"""

from __future__ import annotations

import http.client
import threading
from typing import Any
from urllib.parse import unquote

from tests.fakes._server import SECRET, FakeServer, Faults, Reply, Request, retry_env

ACCOUNT = "123456789012"
REGION = "us-west-2"
ROLE = "arn:aws:iam::123456789012:role/tunegate-bedrock"
BUCKET = "tg-train-data"
POLLS_TO_COMPLETE = 3
CUSTOMIZABLE = {
    "meta.llama3-1-8b-instruct-v1:0:128k",
    "meta.llama3-1-70b-instruct-v1:0:128k",
    "meta.llama3-2-1b-instruct-v1:0:128k",
    "meta.llama3-2-3b-instruct-v1:0:128k",
}
METRICS_CSV = "step_number,epoch_number,training_loss\n1,0,2.31\n2,0,1.87\n3,1,1.42\n"
_HOP = {"host", "content-length", "connection", "transfer-encoding", "date", "server"}


class BedrockFake:
    def __init__(self, faults: Faults | None = None):
        from moto.server import ThreadedMotoServer

        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.polls: dict[str, int] = {}
        self.fail_next_job: str | None = None  # failure message for the next job that completes
        self._lock = threading.Lock()
        self.imports: dict[str, dict[str, Any]] = {}
        self.imported: dict[str, dict[str, Any]] = {}  # by model ARN
        self._hf: dict[str, Any] = {}
        routes = [
            ("GET", r"/foundation-models/(?P<id>[^/]+)", self.foundation_model),
            ("POST", r"/model-import-jobs", self.create_import),
            ("GET", r"/model-import-jobs/(?P<name>[^/]+)", self.get_import),
            ("GET", r"/imported-models/(?P<id>[^/]+)", self.get_imported),
            ("DELETE", r"/imported-models/(?P<id>[^/]+)", self.delete_imported),
            ("POST", r"/model/(?P<id>[^/]+)/converse", self.converse),
            ("GET", r"/model-customization-jobs/(?P<name>[^/]+)", self.get_job),
            *[(m, r"/.*", self.forward) for m in ("GET", "POST", "PUT", "DELETE", "PATCH")],
        ]
        self.server = FakeServer(
            routes, faults or Faults(), creates=("POST /model-customization-jobs",)
        )

    def env(self, monkeypatch: Any, *, timeout_s=2, budget_s=30, max_wait_s=0.3) -> None:
        """boto3 at moto (and this front for Bedrock), a role and a bucket that exist."""
        import boto3

        monkeypatch.setenv("AWS_ENDPOINT_URL", self.moto_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK", self.bedrock_url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTUNEGATETEST")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        monkeypatch.setenv("TUNEGATE_BEDROCK_ROLE_ARN", ROLE)
        monkeypatch.setenv("TUNEGATE_BEDROCK_S3_URI", f"s3://{BUCKET}/tunegate")
        retry_env(monkeypatch, timeout_s, budget_s, max_wait_s)
        boto3.client("s3", endpoint_url=self.moto_url, region_name=REGION).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )

    def __enter__(self) -> BedrockFake:
        self.moto.start()
        self.server.__enter__()
        self._moto_call("POST", "/moto-api/reset")
        return self

    def __exit__(self, *exc: object) -> None:
        self._moto_call("POST", "/moto-api/reset")
        self.server.__exit__(*exc)
        self.moto.stop()

    @property
    def moto_url(self) -> str:
        host, port = self.moto.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def bedrock_url(self) -> str:
        return self.server.url

    @property
    def backend(self) -> Any:
        from moto.bedrock.models import bedrock_backends

        return bedrock_backends[ACCOUNT][REGION]

    @property
    def jobs(self) -> dict[str, Any]:
        return dict(self.backend.model_customization_jobs)

    def _moto_call(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        host, port = self.moto.get_host_and_port()
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def forward(self, req: Request) -> Reply:
        query = "&".join(f"{k}={v}" for k, v in req.query.items())
        headers = {k: v for k, v in req.headers.items() if k not in _HOP}
        status, got, body = self._moto_call(
            req.method, req.path + (f"?{query}" if query else ""), req.body, headers
        )
        return Reply(status, body, {k: v for k, v in got.items() if k not in _HOP})

    def foundation_model(self, req: Request) -> Reply:
        model = unquote(req.match["id"])
        if model not in CUSTOMIZABLE and not model.startswith("meta."):
            return Reply(
                404,
                {"message": f"model {model} not found"},
                {"x-amzn-errortype": "ResourceNotFoundException"},
            )
        details = {
            "modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{model}",
            "modelId": model,
            "providerName": "Meta",
            "customizationsSupported": ["FINE_TUNING"] if model in CUSTOMIZABLE else [],
            "inferenceTypesSupported": ["PROVISIONED"],
        }
        return Reply(200, {"modelDetails": details})

    def get_job(self, req: Request) -> Reply:
        name = unquote(req.match["name"])
        with self._lock:
            job = self.backend.model_customization_jobs.get(name)
            if job is not None and job.status == "InProgress":
                self.polls[name] = self.polls.get(name, 0) + 1
                if self.polls[name] >= POLLS_TO_COMPLETE:
                    self._finish(job)
        return self.forward(req)

    def _finish(self, job: Any) -> None:
        if self.fail_next_job:
            job.status, job.failure_message = "Failed", self.fail_next_job
            self.fail_next_job = None
            return
        job.status = "Completed"
        uri = job.output_data_config["s3Uri"]
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        from moto.s3.models import s3_backends

        key = f"{prefix.rstrip('/')}/model-customization-job-x/training_artifacts/step_wise_training_metrics.csv"
        s3_backends[ACCOUNT]["aws"].put_object(bucket, key, METRICS_CSV.encode())

    # Custom Model Import and Converse (moto has neither) -----------------------------------
    def _s3_objects(self, uri: str) -> dict[str, bytes]:
        from moto.s3.models import s3_backends

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        backend = s3_backends[ACCOUNT]["aws"]
        keys, _, _, _ = backend.list_objects(backend.get_bucket(bucket), prefix, None, None, 1000)
        return {k.name[len(prefix) :].lstrip("/"): k.value for k in keys}

    def create_import(self, req: Request) -> Reply:
        body = req.json()
        name = body.get("jobName")
        uri = ((body.get("modelDataSource") or {}).get("s3DataSource") or {}).get("s3Uri", "")
        if not (name and body.get("importedModelName") and body.get("roleArn") and uri):
            return _aws_error(400, "ValidationException", "missing required fields")
        with self._lock:
            if name in self.imports:
                return _aws_error(400, "ConflictException", f"import job {name} already exists")
            arn = (
                f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-import-job/{len(self.imports) + 1:012d}"
            )
            self.imports[name] = {
                "jobArn": arn,
                "jobName": name,
                "importedModelName": body["importedModelName"],
                "roleArn": body["roleArn"],
                "modelDataSource": body["modelDataSource"],
                "status": "InProgress",
                "creationTime": "2026-11-28T00:00:00Z",
                "_token": body.get("clientRequestToken"),
            }
        return Reply(201, {"jobArn": arn})

    def get_import(self, req: Request) -> Reply:
        name = unquote(req.match["name"])
        job = self.imports.get(name)
        if job is None:
            return _aws_error(404, "ResourceNotFoundException", f"no import job {name}")
        if job["status"] == "InProgress":
            files = self._s3_objects(job["modelDataSource"]["s3DataSource"]["s3Uri"])
            if "config.json" not in files or not any(f.endswith(".safetensors") for f in files):
                job["status"], job["failureMessage"] = "Failed", "config.json or weights missing"
            else:
                model_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:imported-model/{len(self.imported) + 1:012d}"
                job["status"], job["importedModelArn"] = "Completed", model_arn
                self.imported[model_arn] = {
                    "modelArn": model_arn,
                    "modelName": job["importedModelName"],
                    "jobName": name,
                    "modelDataSource": job["modelDataSource"],
                    "modelArchitecture": "llama",
                    "instructSupported": True,
                }
        return Reply(200, {k: v for k, v in job.items() if not k.startswith("_")})

    def get_imported(self, req: Request) -> Reply:
        model = self.imported.get(unquote(req.match["id"]))
        if model is None:
            return _aws_error(404, "ResourceNotFoundException", "no such imported model")
        return Reply(200, model)

    def delete_imported(self, req: Request) -> Reply:
        if self.imported.pop(unquote(req.match["id"]), None) is None:
            return _aws_error(404, "ResourceNotFoundException", "no such imported model")
        return Reply(200, {})

    def _load(self, arn: str) -> tuple[Any, Any]:
        import tempfile
        from pathlib import Path

        from transformers import AutoModelForCausalLM, AutoTokenizer

        if arn not in self._hf:
            folder = Path(tempfile.mkdtemp(prefix="imported-"))
            uri = self.imported[arn]["modelDataSource"]["s3DataSource"]["s3Uri"]
            for name, data in self._s3_objects(uri).items():
                (folder / name).write_bytes(data)
            self._hf[arn] = (
                AutoModelForCausalLM.from_pretrained(folder).eval(),
                AutoTokenizer.from_pretrained(folder),
            )
        return self._hf[arn]

    def converse(self, req: Request) -> Reply:
        import torch

        arn = unquote(req.match["id"])
        if arn not in self.imported:
            return _aws_error(404, "ResourceNotFoundException", f"model {arn} not found")
        body = req.json()
        messages = [{"role": "system", "content": s["text"]} for s in body.get("system") or []]
        messages += [
            {"role": m["role"], "content": "".join(c.get("text", "") for c in m["content"])}
            for m in body.get("messages") or []
        ]
        limit = int((body.get("inferenceConfig") or {}).get("maxTokens", 64))
        model, tok = self._load(arn)
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)[
            "input_ids"
        ]
        seq, reason = list(ids), "max_tokens"
        with torch.no_grad():
            for _ in range(limit):
                nxt = int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
                if nxt == tok.eos_token_id:
                    reason = "end_turn"
                    break
                seq.append(nxt)
        text = tok.decode(seq[len(ids) :], skip_special_tokens=True)
        return Reply(
            200,
            {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": reason,
                "usage": {
                    "inputTokens": len(ids),
                    "outputTokens": len(seq) - len(ids),
                    "totalTokens": len(seq),
                },
                "metrics": {"latencyMs": 1},
            },
        )

    def script(self, method: str, path_re: str, kind: str) -> None:
        self.server.faults.script(method, path_re, kind)

    def requests(self, method: str, path_re: str) -> list[Request]:
        import re

        return [
            r for r in self.server.requests if r.method == method and re.search(path_re, r.path)
        ]


def _aws_error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"message": message}, {"x-amzn-errortype": code})
