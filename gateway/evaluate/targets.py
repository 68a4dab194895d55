"""What `tunegate eval` generates with: a target resolved to one backend that answers chat
messages greedily. Base and tuned must resolve to the same backend (evaluation.md 1.5: numbers
across backends are not comparable), so the backend is part of each target's description.

| target | backend |
|---|---|
| an adapter folder, or a job (its adapter) | `hf` in-process transformers + PEFT; its base: the same without the adapter |
| a merged / HF model folder | `hf` |
| a `.gguf` file | `llama.cpp` (llama-cpp-python's server, started here on a free port) |
| an MLX export folder | `mlx` (mlx_lm.server, started here) |
| a deployment name or id | `serve:TARGET`, through `tunegate serve` on loopback |
| `http://HOST:PORT/v1#MODEL` | `openai-compatible` |
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import SpecError, TunegateError

Messages = list[dict[str, Any]]


@dataclass
class Target:
    """A resolved target: what it is, the backend, and a fingerprint for the output cache."""

    ref: str
    backend: str
    kind: str  # hf | gguf | mlx | deployment | endpoint
    path: Path | None = None
    adapter: Path | None = None
    url: str | None = None
    model: str | None = None
    notes: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        parts = [self.backend, self.kind, self.url or "", self.model or ""]
        for p in (self.path, self.adapter):
            if p is not None:
                files = sorted(q for q in ([p] if p.is_file() else p.iterdir()) if q.is_file())
                parts += [f"{q.name}:{q.stat().st_size}:{q.stat().st_mtime_ns}" for q in files]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "backend": self.backend,
            "kind": self.kind,
            "path": str(self.path) if self.path else None,
            "adapter": str(self.adapter) if self.adapter else None,
            "model": self.model,
        }


def resolve(ref: str) -> Target:
    """A target from what the user named (see the module table)."""
    if ref.startswith(("http://", "https://")):
        url, _, model = ref.partition("#")
        if not model:
            raise SpecError(
                f"an endpoint target names its model: {ref}#MODEL",
                fix="e.g. http://127.0.0.1:8080/v1#my-model",
            )
        return Target(ref, "openai-compatible", "endpoint", url=url.rstrip("/"), model=model)
    path = Path(ref).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return Target(ref, "llama.cpp", "gguf", path=path.resolve())
    if path.is_dir():
        if (path / "adapter_config.json").is_file():
            from exporters.adapter import adapter_config

            base = adapter_config(path).get("base_model_name_or_path")
            return Target(ref, "hf", "hf", path=Path(str(base)), adapter=path.resolve())
        from gateway.sources import is_mlx

        if is_mlx(path):
            return Target(ref, "mlx", "mlx", path=path.resolve())
        if (path / "config.json").is_file():
            return Target(ref, "hf", "hf", path=path.resolve())
    from gateway.deploy_journal import get_deployment
    from gateway.journal import Journal

    with Journal() as journal:
        try:
            dep = get_deployment(ref, journal)
            return Target(ref, f"serve:{dep.target}", "deployment", model=dep.name)
        except TunegateError:
            pass
        try:
            job = journal.get(ref)
        except TunegateError:
            job = None
    if job is not None:
        from gateway.jobs import Job

        art = Job(job.id).artifact()
        return resolve(str(art.uri))
    raise SpecError(
        f"'{ref}' is not a model folder, adapter, GGUF, MLX folder, deployment, job or endpoint",
        fix="give a path, a deployment name (`tunegate deployments`), a job id, or URL#MODEL",
    )


def base_of(tuned: Target) -> Target:
    """The default `--against`: an adapter's base through the same in-process backend."""
    if tuned.kind == "hf" and tuned.adapter is not None:
        return Target(str(tuned.path), "hf", "hf", path=tuned.path)
    raise SpecError(
        f"{tuned.ref} ({tuned.backend}) has no base tunegate can run the same way",
        fix="name it with --against (e.g. the base exported the same way: a GGUF for a GGUF)",
    )


class Generator:
    """Greedy chat answers from one target; a context manager that starts and stops engines."""

    def __init__(self, target: Target):
        self.target = target
        self._stack = contextlib.ExitStack()
        self._model: Any = None
        self._url: str | None = None

    def __enter__(self) -> Generator:
        t = self.target
        if t.kind == "hf":
            self._model = _load_hf(t)
        elif t.kind in ("gguf", "mlx"):
            self._url = self._stack.enter_context(engine(t))
        elif t.kind == "deployment":
            from gateway.serve import running

            self._url = self._stack.enter_context(running())
        else:
            self._url = t.url
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (for a judge); in-process models have none."""
        if self._url is None:
            raise SpecError(
                f"{self.target.ref} runs in-process and cannot be a judge",
                fix="serve it (a GGUF, a deployment, or URL#MODEL)",
            )
        return self._url

    def answer(self, messages: Messages, max_tokens: int) -> str:
        if self._model is not None:
            return _hf_answer(self._model, messages, max_tokens)
        return _chat(
            str(self._url), str(self.target.model or "default_model"), messages, max_tokens
        )


def post_chat(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One chat completion request to an OpenAI-compatible endpoint; its first message."""
    import httpx

    try:
        res = httpx.post(url + "/chat/completions", json=body, timeout=600)
    except httpx.HTTPError as exc:
        raise TunegateError(f"cannot reach {url}: {exc}") from None
    if res.status_code >= 400:
        raise TunegateError(f"{url} answered HTTP {res.status_code}: {res.text[:300]}")
    return dict(res.json()["choices"][0]["message"])


def _chat(url: str, model: str, messages: Messages, max_tokens: int) -> str:
    """One greedy chat completion; tool calls come back as their JSON."""
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    message = post_chat(url, body)
    if message.get("tool_calls"):
        return json.dumps({"tool_calls": message["tool_calls"]})
    return message.get("content") or ""


@contextlib.contextmanager
def engine(t: Target, *, logits_all: bool = False) -> Iterator[str]:
    """llama-cpp-python's or mlx-lm's server on a free port, as `tunegate serve` runs them;
    `logits_all` keeps every prompt token's logits, which prompt log-probs (echo) need."""
    import dataclasses

    import httpx

    from exporters.deploy import get_deployer
    from gateway.catalog import tunegate_home
    from gateway.deploy_journal import Deployment
    from gateway.serve.engines import Engines

    target = "llamacpp" if t.kind == "gguf" else "mlx"
    dep = Deployment(f"eval-{t.fingerprint()}", target, "eval", str(t.path), "live")
    upstream = get_deployer(target).upstream(dep)
    if logits_all and target == "llamacpp":
        upstream = dataclasses.replace(
            upstream, command=(*upstream.command, "--logits_all", "true")
        )
    t.model = upstream.model
    engines: Engines | None = None

    async def start() -> str:
        nonlocal engines
        async with httpx.AsyncClient() as client:
            engines = Engines(tunegate_home() / "eval", client)
            return await engines.url(dep.id, upstream)

    try:
        yield asyncio.run(start())
    finally:
        if engines is not None:
            engines.close()


def _load_hf(t: Target) -> Any:
    from gateway.extras import require

    require("torch", "transformers", what="evaluating a model folder in-process")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(t.path, dtype=torch.float32).eval()
    if t.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, t.adapter).eval()
    own = t.adapter is not None and (t.adapter / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(t.adapter if own else t.path)
    return model, tokenizer


def _hf_answer(loaded: Any, messages: Messages, max_tokens: int) -> str:
    import torch

    model, tok = loaded
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)[
        "input_ids"
    ]
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        )
    return tok.decode(out[0][len(ids) :], skip_special_tokens=True)
