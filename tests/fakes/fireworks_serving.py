"""The serving half of the Fireworks fake: models uploaded as PEFT add-ons (signed PUTs checked
against the signed size), validation, deployments that come up READY, LoRA loads, and chat that
answers only for a LoRA loaded on a ready deployment."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.fakes._server import Reply, Request, chat_reply


def _error(status: int, code: str, message: str) -> Reply:
    # Google-style error envelope; `x-should-retry: false` keeps the SDK from retrying anyway
    return Reply(
        status,
        {"error": {"code": status, "status": code, "message": message}},
        {"x-should-retry": "false"},
    )


def _iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


class ServingRoutes:
    """Mixed into FireworksFake, which holds the state these handlers use."""

    account: str
    models: dict[str, dict[str, bytes]]
    model_meta: dict[str, dict[str, Any]]
    deployments: dict[str, dict[str, Any]]
    deployed: dict[str, dict[str, Any]]
    base_url: str

    def _name(self, collection: str, ident: str) -> str:
        return f"accounts/{self.account}/{collection}/{ident}"

    def _account(self, req: Request) -> Reply | None:
        if req.headers.get("authorization", "") in ("", "Bearer "):
            return _error(401, "UNAUTHENTICATED", "missing API key")
        if req.match and req.match["acct"] != self.account:
            return _error(403, "PERMISSION_DENIED", f"no access to account {req.match['acct']}")
        return None

    def create_model(self, req: Request) -> Reply:
        if denied := self._account(req):
            return denied
        body = req.json()
        ident, model = body.get("modelId"), body.get("model") or {}
        peft = model.get("peftDetails") or {}
        if model.get("kind", "HF_PEFT_ADDON") == "HF_PEFT_ADDON":
            if not 4 <= int(peft.get("r", 0)) <= 64 or not peft.get("targetModules"):
                return _error(
                    400, "INVALID_ARGUMENT", "peftDetails needs r in [4, 64] and targetModules"
                )
            if not str(peft.get("baseModel", "")).startswith("accounts/"):
                return _error(400, "INVALID_ARGUMENT", "peftDetails.baseModel must be a model name")
        with self._lock:
            if ident in self.model_meta or ident in self.models:
                return _error(409, "ALREADY_EXISTS", f"model {ident} already exists")
            self.model_meta[ident] = {
                "name": self._name("models", ident),
                "state": "UPLOADING",
                "kind": model.get("kind", "HF_PEFT_ADDON"),
                "peftDetails": peft,
            }
            self.models[ident] = {}
        return Reply(200, self.model_meta[ident])

    def get_model(self, req: Request) -> Reply:
        ident = req.match["id"]
        if ident in self.model_meta:
            return Reply(200, self.model_meta[ident])
        if ident in self.models:  # a job's output model
            return Reply(200, {"name": self._name("models", ident), "state": "READY"})
        return _error(404, "NOT_FOUND", f"model {ident} not found")

    def upload_endpoint(self, req: Request) -> Reply:
        ident = req.match["id"]
        if ident not in self.model_meta:
            return _error(404, "NOT_FOUND", "no such model")
        sizes = req.json().get("filenameToSize") or {}
        self.model_meta[ident]["_sizes"] = {k: int(v) for k, v in sizes.items()}
        urls = {n: f"{self.base_url}/signed-put/{ident}/{n}?sig=x" for n in sizes}
        return Reply(200, {"filenameToSignedUrls": urls})

    def signed_put(self, req: Request) -> Reply:
        meta = self.model_meta.get(req.match["model"])
        want = (meta or {}).get("_sizes", {}).get(req.match["name"])
        if want is None:
            return Reply(403, b"signature does not cover this object")
        if req.headers.get("x-goog-content-length-range") != f"{want},{want}":
            return Reply(400, b"X-Goog-Content-Length-Range missing or wrong")
        if len(req.body) != want:
            return Reply(400, b"size differs from the signed size")
        self.models[req.match["model"]][req.match["name"]] = req.body
        return Reply(200, b"")

    def validate_model(self, req: Request) -> Reply:
        ident = req.match["id"]
        meta, files = self.model_meta.get(ident), self.models.get(ident, {})
        if meta is None:
            return _error(404, "NOT_FOUND", "no such model")
        missing = {"adapter_config.json", "adapter_model.safetensors"} - set(files)
        if missing:
            return _error(400, "FAILED_PRECONDITION", f"missing {sorted(missing)}")
        meta["state"] = "READY"
        return Reply(200, {"warnings": []})

    def create_deployment(self, req: Request) -> Reply:
        if denied := self._account(req):
            return denied
        ident = req.query.get("deploymentId") or f"dep-{len(self.deployments) + 1}"
        body = req.json()
        if not body.get("baseModel"):
            return _error(400, "INVALID_ARGUMENT", "baseModel is required")
        with self._lock:
            if ident in self.deployments:
                return _error(409, "ALREADY_EXISTS", f"deployment {ident} already exists")
            self.deployments[ident] = {
                **body,
                "name": self._name("deployments", ident),
                "state": "CREATING",
                "createTime": _iso(),
            }
        return Reply(200, self.deployments[ident])

    def get_deployment(self, req: Request) -> Reply:
        dep = self.deployments.get(req.match["id"])
        if dep is None:
            return _error(404, "NOT_FOUND", "no such deployment")
        if dep["state"] == "CREATING":
            dep["state"] = "READY"
        return Reply(200, dep)

    def delete_deployment(self, req: Request) -> Reply:
        if self.deployments.pop(req.match["id"], None) is None:
            return _error(404, "NOT_FOUND", "no such deployment")
        return Reply(200, {})

    def load_lora(self, req: Request) -> Reply:
        body = req.json()
        model, dep = str(body.get("model", "")), str(body.get("deployment", ""))
        dep_obj = self.deployments.get(dep.rsplit("/", 1)[-1])
        if dep_obj is None or dep_obj["state"] != "READY":
            return _error(400, "FAILED_PRECONDITION", f"deployment {dep} is not READY")
        if not dep_obj.get("enableAddons"):
            return _error(400, "FAILED_PRECONDITION", "the deployment does not enable add-ons")
        short = model.rsplit("/", 1)[-1]
        meta = self.model_meta.get(short) or (
            {"state": "READY"} if self.models.get(short) else None
        )
        if meta is None or meta.get("state") != "READY":
            return _error(400, "FAILED_PRECONDITION", f"model {model} is not READY")
        ident = f"dm-{len(self.deployed) + 1}"
        self.deployed[ident] = {
            "name": self._name("deployedModels", ident),
            "model": model,
            "deployment": dep,
            "state": "DEPLOYING",
        }
        return Reply(200, self.deployed[ident])

    def get_deployed(self, req: Request) -> Reply:
        dm = self.deployed.get(req.match["id"])
        if dm is None:
            return _error(404, "NOT_FOUND", "no such deployed model")
        if dm["state"] == "DEPLOYING":
            dm["state"] = "DEPLOYED"
        return Reply(200, dm)

    def unload_lora(self, req: Request) -> Reply:
        if self.deployed.pop(req.match["id"], None) is None:
            return _error(404, "NOT_FOUND", "no such deployed model")
        return Reply(200, {})

    def chat(self, req: Request) -> Reply:
        body = req.json()
        model, _, dep = str(body.get("model", "")).partition("#")
        live = any(
            d["model"] == model and d["state"] == "DEPLOYED" and (not dep or d["deployment"] == dep)
            for d in self.deployed.values()
        )
        if not live:
            return _error(404, "NOT_FOUND", f"model {body.get('model')} is not deployed")
        return chat_reply(model, body["messages"][-1]["content"], body)
