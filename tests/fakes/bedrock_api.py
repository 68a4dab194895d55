"""AWS for the Bedrock tests: moto in server mode (real HTTP, so boto3's real transport is used)
for S3 and the model-customization calls, behind a small front server that

- injects the same faults as the other fakes (boto3 sees real 429/5xx, drops and timeouts),
- serves the calls moto 5.2.5 lacks (`GetFoundationModel`),
- advances jobs through moto's backend (moto leaves every job `InProgress`) and, when one
  completes, writes the step-wise metrics CSV Bedrock puts under the output prefix.

S3 goes to moto directly (`AWS_ENDPOINT_URL`); Bedrock through the front (`AWS_ENDPOINT_URL_BEDROCK`).
"""

from __future__ import annotations

import http.client
import threading
from typing import Any
from urllib.parse import unquote

from tests.fakes._server import FakeServer, Faults, Reply, Request

ACCOUNT = "123456789012"
REGION = "us-west-2"
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
        routes = [
            ("GET", r"/foundation-models/(?P<id>[^/]+)", self.foundation_model),
            ("GET", r"/model-customization-jobs/(?P<name>[^/]+)", self.get_job),
            *[(m, r"/.*", self.forward) for m in ("GET", "POST", "PUT", "DELETE", "PATCH")],
        ]
        self.server = FakeServer(
            routes, faults or Faults(), creates=("POST /model-customization-jobs",)
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

    def script(self, method: str, path_re: str, kind: str) -> None:
        self.server.faults.script(method, path_re, kind)

    def requests(self, method: str, path_re: str) -> list[Request]:
        import re

        return [
            r for r in self.server.requests if r.method == method and re.search(path_re, r.path)
        ]
