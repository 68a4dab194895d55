"""Together's v2 project API, as the `together` SDK (and its CLI uploader) speak it: project
models, the multipart model upload (create -> presigned part PUTs answered with ETags ->
complete, checked against S3-style md5 ETags), dedicated endpoints with deployments that
provision, adapters attached per cluster, and chat answered by whatever an endpoint serves.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

from tests.fakes._server import Reply, Request

_P = r"/v2/projects/(?P<proj>[^/]+)"


def _err(status: int, message: str) -> Reply:
    return Reply(status, {"error": {"message": message}}, {"x-should-retry": "false"})


class TogetherV2:
    def __init__(self, base_url: Any, project: str = "proj-1"):
        self._base_url = base_url  # a callable: the server's URL once it listens
        self.project = project
        self.models: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, bytes]] = {}  # model id -> path -> bytes
        self.uploads: dict[str, dict[str, Any]] = {}  # upload id -> {model, path, parts}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.adapters: dict[str, dict[str, Any]] = {}
        self.part_puts = 0
        self._ids = itertools.count(1)

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", rf"{_P}/models", self.list_models),
            ("POST", rf"{_P}/models", self.create_model),
            ("POST", rf"{_P}/models/upload/create", self.upload_create),
            ("PUT", r"/v2-storage/(?P<upload>[^/]+)/(?P<part>\d+)", self.put_part),
            ("POST", rf"{_P}/models/upload/complete", self.upload_complete),
            ("GET", rf"{_P}/endpoints", self.list_endpoints),
            ("POST", rf"{_P}/endpoints", self.create_endpoint),
            ("DELETE", rf"{_P}/endpoints/(?P<ep>[^/]+)", self.delete_endpoint),
            ("POST", rf"{_P}/endpoints/(?P<ep>[^/]+)/deployments", self.create_deployment),
            (
                "GET",
                rf"{_P}/endpoints/(?P<ep>[^/]+)/deployments/(?P<dep>[^/]+)",
                self.get_deployment,
            ),
            (
                "DELETE",
                rf"{_P}/endpoints/(?P<ep>[^/]+)/deployments/(?P<dep>[^/]+)",
                self.delete_deployment,
            ),
            (
                "POST",
                rf"{_P}/endpoints/(?P<ep>[^/]+)/deployments/(?P<dep>[^/]+)/adapters",
                self.attach,
            ),
            (
                "GET",
                rf"{_P}/endpoints/(?P<ep>[^/]+)/deployments/(?P<dep>[^/]+)/adapters/(?P<id>[^/]+)",
                self.get_attachment,
            ),
        ]

    def _next(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def _check(self, req: Request) -> Reply | None:
        if req.match and req.match["proj"] != self.project:
            return _err(404, f"project {req.match['proj']} not found")
        return None

    # models -----------------------------------------------------------------------------------
    def list_models(self, req: Request) -> Reply:
        return self._check(req) or Reply(
            200, {"data": list(self.models.values()), "next_cursor": None}
        )

    def create_model(self, req: Request) -> Reply:
        if bad := self._check(req):
            return bad
        body = req.json()
        name = f"{self.project}/{body.get('name')}"
        if body.get("type") not in ("model", "adapter", "models", "adapters"):
            return _err(400, "type must be model or adapter")
        if any(m["name"] == name for m in self.models.values()):
            return _err(409, f"model {name} already exists")
        ident = self._next("model")
        self.models[ident] = {
            "id": ident,
            "name": name,
            "projectId": self.project,
            "organizationId": "org-1",
            "visibility": "VISIBILITY_PRIVATE",
            "weights": {},
            "baseModelId": body.get("baseModelId"),
            "type": body["type"].rstrip("s"),
        }
        self.files[ident] = {}
        return Reply(200, self.models[ident])

    def upload_create(self, req: Request) -> Reply:
        body = req.json()
        model = body.get("objectId")
        if model not in self.models:
            return _err(404, f"model {model} not found")
        out = []
        for f in body.get("files") or []:
            have = self.files[model].get(f["path"])
            if have is not None and _etag(have, self.part_size(have, f["numParts"])) == f["hash"]:
                out.append({"path": f["path"], "skipUpload": True})
                continue
            upload = self._next("up")
            self.uploads[upload] = {"model": model, "path": f["path"], "parts": {}}
            parts = [
                {
                    "partNumber": n,
                    "url": f"{self._base_url()}/v2-storage/{upload}/{n}",
                    "headers": {"Content-Type": "application/octet-stream"},
                }
                for n in range(1, int(f["numParts"]) + 1)
            ]
            out.append({"path": f["path"], "uploadId": upload, "parts": parts})
        return Reply(200, {"files": out})

    @staticmethod
    def part_size(data: bytes, parts: int) -> int:
        from exporters.deploy.together import PART_BYTES

        return PART_BYTES if parts > 1 else max(1, len(data))

    def put_part(self, req: Request) -> Reply:
        upload = self.uploads.get(req.match["upload"])
        if upload is None or req.headers.get("authorization"):
            return Reply(403, b"bad signature")
        self.part_puts += 1
        upload["parts"][int(req.match["part"])] = req.body
        return Reply(200, b"", {"ETag": f'"{hashlib.md5(req.body).hexdigest()}"'})

    def upload_complete(self, req: Request) -> Reply:
        body = req.json()
        model = body.get("objectId")
        for f in body.get("files") or []:
            if f.get("skipUpload"):
                continue
            details = f.get("uploadDetails") or {}
            upload = self.uploads.pop(details.get("uploadId", ""), None)
            if upload is None:
                return _err(400, f"unknown upload for {f.get('path')}")
            parts = upload["parts"]
            sent = [
                p["hash"] for p in sorted(details.get("parts") or [], key=lambda p: p["partNumber"])
            ]
            got = [hashlib.md5(parts[n]).hexdigest() for n in sorted(parts)]
            if sent != got:
                return _err(400, f"part hashes of {f['path']} do not match what was stored")
            data = b"".join(parts[n] for n in sorted(parts))
            if _etag(data, len(parts[min(parts)])) != f["hash"]:
                return _err(400, f"{f['path']}: file hash does not match its parts")
            self.files[model][f["path"]] = data
        return Reply(200, {"revisionId": self._next("rev")})

    # endpoints --------------------------------------------------------------------------------
    def _endpoint(self, ep: dict[str, Any]) -> dict[str, Any]:
        deps = [
            {"id": d["id"], "name": d["name"]}
            for d in self.deployments.values()
            if d["_ep"] == ep["id"]
        ]
        return {**ep, "deployments": deps}

    def list_endpoints(self, req: Request) -> Reply:
        return Reply(
            200, {"data": [self._endpoint(e) for e in self.endpoints.values()], "next_cursor": None}
        )

    def create_endpoint(self, req: Request) -> Reply:
        name = f"{self.project}/{req.json().get('name')}"
        if any(e["name"] == name for e in self.endpoints.values()):
            return _err(409, f"endpoint {name} already exists")
        ident = self._next("ep")
        self.endpoints[ident] = {
            "id": ident,
            "name": name,
            "endpointType": "ENDPOINT_TYPE_DEDICATED",
        }
        return Reply(200, self._endpoint(self.endpoints[ident]))

    def delete_endpoint(self, req: Request) -> Reply:
        if self.endpoints.pop(req.match["ep"], None) is None:
            return _err(404, "no such endpoint")
        return Reply(200, {})

    def create_deployment(self, req: Request) -> Reply:
        if req.match["ep"] not in self.endpoints:
            return _err(404, "no such endpoint")
        body = req.json()
        if not (body.get("modelId") or body.get("model")) or "autoscaling" not in body:
            return _err(400, "model and autoscaling are required")
        ident = self._next("dep")
        self.deployments[ident] = {
            "id": ident,
            "name": body.get("name"),
            "modelId": body.get("modelId") or body.get("model"),
            "autoscaling": body["autoscaling"],
            "inactiveTimeout": body.get("inactiveTimeout"),
            "status": {"state": "DEPLOYMENT_STATE_PROVISIONING", "message": ""},
            "_ep": req.match["ep"],
        }
        return Reply(200, self._public(self.deployments[ident]))

    @staticmethod
    def _public(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if not k.startswith("_")}

    def get_deployment(self, req: Request) -> Reply:
        dep = self.deployments.get(req.match["dep"])
        if dep is None:
            return _err(404, "no such deployment")
        dep["status"] = {"state": "DEPLOYMENT_STATE_READY", "message": "ready"}
        return Reply(200, self._public(dep))

    def delete_deployment(self, req: Request) -> Reply:
        if self.deployments.pop(req.match["dep"], None) is None:
            return _err(404, "no such deployment")
        return Reply(200, {})

    def attach(self, req: Request) -> Reply:
        dep = self.deployments.get(req.match["dep"])
        body = req.json()
        model = self.models.get(body.get("adapterModelId", ""))
        if dep is None or dep["status"]["state"] != "DEPLOYMENT_STATE_READY":
            return _err(400, "deployment is not ready")
        if model is None or model["type"] != "adapter" or model["baseModelId"] != dep["modelId"]:
            return _err(400, "adapter not found, or not for this deployment's base model")
        if "adapter_config.json" not in self.files[model["id"]]:
            return _err(400, "adapter has no adapter_config.json")
        ident = self._next("dad")
        self.adapters[ident] = {
            "id": ident,
            "adapterModelId": model["id"],
            "desiredRevisionId": body.get("adapterRevisionId", ""),
            "etag": "1",
            "perCluster": [
                {
                    "adapterModelId": model["id"],
                    "clusterId": "c1",
                    "failedPodCount": 0,
                    "readyPodCount": 0,
                    "totalPodCount": 1,
                    "state": "ADAPTER_LOAD_STATE_LOADING",
                }
            ],
            "_dep": dep["id"],
        }
        return Reply(200, self._public(self.adapters[ident]))

    def get_attachment(self, req: Request) -> Reply:
        att = self.adapters.get(req.match["id"])
        if att is None:
            return _err(404, "no such adapter attachment")
        for c in att["perCluster"]:
            c.update(state="ADAPTER_LOAD_STATE_READY", readyPodCount=1)
        return Reply(200, self._public(att))

    def serves(self, model: str) -> bool:
        """Whether chat for `model` reaches a ready deployment (an endpoint or an attached adapter)."""
        for ep in self.endpoints.values():
            deps = [d for d in self.deployments.values() if d["_ep"] == ep["id"]]
            ready = [d for d in deps if d["status"]["state"] == "DEPLOYMENT_STATE_READY"]
            if ep["name"] == model and ready:
                return True
            for att in self.adapters.values():
                adapter = self.models.get(att["adapterModelId"], {})
                if adapter.get("name") == model and any(d["id"] == att["_dep"] for d in ready):
                    return all(c["state"] == "ADAPTER_LOAD_STATE_READY" for c in att["perCluster"])
        return False


def _etag(data: bytes, part: int) -> str:
    chunks = [data[i : i + part] for i in range(0, len(data), part)] or [b""]
    if len(chunks) == 1:
        return hashlib.md5(chunks[0]).hexdigest()
    return f"{hashlib.md5(b''.join(hashlib.md5(c).digest() for c in chunks)).hexdigest()}-{len(chunks)}"
