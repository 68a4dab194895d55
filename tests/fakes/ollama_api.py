"""Ollama's REST API as the official `ollama` client calls it (../shared/reference/
provider-contracts.md section 5): blobs by digest (HEAD/POST), `/api/create` with streamed NDJSON
status, show, tags, version, delete, and `/api/chat` answered by llama.cpp loading the uploaded GGUF;
and Ollama's OpenAI-compatible `/v1/chat/completions` (with `stream_options.include_usage`) and
`/v1/models` (https://docs.ollama.com/api/openai-compatibility), answered the same way.

Chat renders the model's TEMPLATE with the Go-template evaluator the tests use, filled the way
Ollama fills it (Modelfile SYSTEM prepended, `.System`, collated `.Messages`), then generates
greedily until a `stop` string or an end-of-generation token, like Ollama's runner.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from tests.fakes._server import FakeServer, Faults, Reply, Request, openai_chat
from tests.support.go_template import execute, ollama_values


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _err(status: int, message: str) -> Reply:
    return Reply(status, {"error": message})


class OllamaFake:
    VERSION = "0.12.3"  # what GET /api/version answers

    def __init__(self, blob_dir: Path, faults: Faults | None = None):
        self.blob_dir = Path(blob_dir)
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.models: dict[str, dict[str, Any]] = {}
        self.uploads = 0
        self._llms: dict[str, Any] = {}
        self._lock = threading.Lock()
        routes = [
            ("HEAD", r"/api/blobs/(?P<digest>sha256:[0-9a-f]{64})", self.head_blob),
            ("POST", r"/api/blobs/(?P<digest>sha256:[0-9a-f]{64})", self.post_blob),
            ("POST", r"/api/create", self.create),
            ("POST", r"/api/show", self.show),
            ("GET", r"/api/tags", self.tags),
            ("GET", r"/api/version", self.version),
            ("DELETE", r"/api/delete", self.delete),
            ("POST", r"/api/chat", self.chat),
            ("POST", r"/v1/chat/completions", self.openai_chat),
            ("GET", r"/v1/models", self.openai_models),
        ]
        self.server = FakeServer(routes, faults or Faults())

    def __enter__(self) -> OllamaFake:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for llm in self._llms.values():
            llm.close()
        self.server.__exit__(*exc)

    @property
    def host(self) -> str:
        return self.server.url

    def _blob(self, digest: str) -> Path:
        return self.blob_dir / digest.replace(":", "-")

    def head_blob(self, req: Request) -> Reply:
        return Reply(200 if self._blob(req.match["digest"]).exists() else 404)

    def post_blob(self, req: Request) -> Reply:
        digest = req.match["digest"]
        if "sha256:" + hashlib.sha256(req.body).hexdigest() != digest:
            return _err(400, "digest mismatch")
        self._blob(digest).write_bytes(req.body)
        self.uploads += 1
        return Reply(201)

    def create(self, req: Request) -> Reply:
        body = req.json()
        name = body.get("model")
        files = body.get("files") or {}
        if not name or not files:
            return _err(400, "model and files are required")
        if "modelfile" in body or "path" in body:
            return _err(400, "the modelfile and path fields are no longer supported")
        statuses = []
        for fname, digest in files.items():
            blob = self._blob(digest)
            if not blob.exists():
                return _err(400, f"blob {digest} for {fname} not found")
            if blob.read_bytes()[:4] != b"GGUF":
                return _err(400, f"{fname} is not a GGUF file")
            statuses += [{"status": "parsing GGUF"}, {"status": f"using existing layer {digest}"}]
        params = body.get("parameters") or {}
        if not isinstance(params.get("stop", []), list):
            return _err(400, "parameters.stop must be a list")
        with self._lock:
            self.models[name] = {
                "digest": next(iter(files.values())),
                "template": body.get("template") or "{{ .Prompt }}",
                "system": body.get("system"),
                "parameters": params,
                "modified_at": _now(),
            }
        statuses += [{"status": "writing manifest"}, {"status": "success"}]
        if body.get("stream") is False:
            return Reply(200, statuses[-1])
        lines = b"".join(json.dumps(s).encode() + b"\n" for s in statuses)
        return Reply(200, lines, {"content-type": "application/x-ndjson"})

    def _model(self, req: Request) -> tuple[str, dict[str, Any] | None]:
        name = (req.json() or {}).get("model", "")
        return name, self.models.get(name) or self.models.get(name.removesuffix(":latest"))

    def show(self, req: Request) -> Reply:
        name, model = self._model(req)
        if model is None:
            return _err(404, f"model '{name}' not found")
        params = "\n".join(
            f"{k} {json.dumps(v)}"
            for k, vs in model["parameters"].items()
            for v in (vs if isinstance(vs, list) else [vs])
        )
        return Reply(
            200,
            {
                "modelfile": f'FROM {model["digest"]}\nTEMPLATE """{model["template"]}"""\n',
                "parameters": params,
                "template": model["template"],
                "system": model["system"],
                "details": {"format": "gguf", "family": "llama"},
                "model_info": {"general.architecture": "llama"},
                "modified_at": model["modified_at"],
                "capabilities": ["completion"],
            },
        )

    def version(self, req: Request) -> Reply:
        return Reply(200, {"version": self.VERSION})

    def tags(self, req: Request) -> Reply:
        rows = [
            {
                "name": f"{n}:latest",
                "model": f"{n}:latest",
                "modified_at": m["modified_at"],
                "digest": m["digest"],
                "size": self._blob(m["digest"]).stat().st_size,
            }
            for n, m in self.models.items()
        ]
        return Reply(200, {"models": rows})

    def delete(self, req: Request) -> Reply:
        name, model = self._model(req)
        if model is None:
            return _err(404, f"model '{name}' not found")
        with self._lock:
            self.models.pop(name, None)
            self.models.pop(name.removesuffix(":latest"), None)
        return Reply(200)

    def _llm(self, digest: str) -> Any:
        from llama_cpp import Llama

        if digest not in self._llms:
            self._llms[digest] = Llama(
                model_path=str(self._blob(digest)), n_ctx=512, logits_all=True, verbose=False
            )
        return self._llms[digest]

    def _answer(
        self, model: dict[str, Any], messages: list[dict[str, Any]], limit: int
    ) -> tuple[str, str, int, int]:
        prompt = execute(model["template"], ollama_values(messages, model["system"]))
        stops = list(model["parameters"].get("stop") or [])
        with self._lock:
            return _generate(self._llm(model["digest"]), prompt, stops, limit)

    def chat(self, req: Request) -> Reply:
        body = req.json()
        name, model = self._model(req)
        if model is None:
            return _err(404, f"model '{name}' not found, try pulling it first")
        limit = int((body.get("options") or {}).get("num_predict", 128))
        text, reason, n_prompt, n_out = self._answer(model, body.get("messages") or [], limit)
        reply = {
            "model": name,
            "created_at": _now(),
            "message": {"role": "assistant", "content": text},
            "done": True,
            "done_reason": reason,
            "prompt_eval_count": n_prompt,
            "eval_count": n_out,
        }
        if body.get("stream", True):
            return Reply(
                200, json.dumps(reply).encode() + b"\n", {"content-type": "application/x-ndjson"}
            )
        return Reply(200, reply)

    def openai_chat(self, req: Request) -> Reply:
        body = req.json()
        name, model = self._model(req)
        if model is None:
            error = {"message": f"model '{name}' not found", "type": "api_error"}
            return Reply(404, {"error": error})
        limit = int(body.get("max_tokens") or 128)
        text, reason, n_prompt, n_out = self._answer(model, body.get("messages") or [], limit)
        return openai_chat(name, text, reason, (n_prompt, n_out), body)

    def openai_models(self, req: Request) -> Reply:
        rows = [
            {"id": f"{n}:latest", "object": "model", "created": 0, "owned_by": "library"}
            for n in self.models
        ]
        return Reply(200, {"object": "list", "data": rows})


def _generate(llm: Any, prompt: str, stops: list[str], limit: int) -> tuple[str, str, int, int]:
    """Greedy decoding until a stop string, an end-of-generation token, or `limit` tokens."""
    import numpy as np
    from llama_cpp import llama_vocab_is_eog

    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    llm.reset()
    llm.eval(tokens)
    out: list[int] = []
    text = b""
    for _ in range(limit):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if llama_vocab_is_eog(llm._model.vocab, token):
            return text.decode(errors="replace"), "stop", len(tokens), len(out)
        out.append(token)
        text += llm.detokenize([token], special=True)
        decoded = text.decode(errors="ignore")
        for stop in stops:
            if stop and stop in decoded:
                return decoded[: decoded.index(stop)], "stop", len(tokens), len(out)
        llm.eval([token])
    return text.decode(errors="replace"), "length", len(tokens), len(out)
