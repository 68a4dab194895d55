"""Ollama: a Modelfile for a GGUF, and the model created through Ollama's REST API.

The TEMPLATE is written from the training chat template (`exporters.chat_format`), with a
`PARAMETER stop` for every end-of-turn marker, so a fine-tune stops where it learned to stop.
Creation goes through the official `ollama` client (`OLLAMA_HOST`): the GGUF is uploaded as a
blob addressed by its SHA-256, then `/api/create` names it with the template and parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporters.chat_format import ChatFormat, detect, gguf_chat_info
from exporters.deploy.base import (
    DeployOptions,
    DeploySource,
    Messages,
    Prepared,
    RunsHere,
    Upstream,
)
from gateway.errors import DeployError, ExportError, ProviderError

if TYPE_CHECKING:  # the journal types load with the target, not with `tunegate --help`
    from gateway.journal.deployments import ChatReply, Deployment

DEFAULT_HOST = "http://127.0.0.1:11434"


@dataclass
class OllamaPlan:
    """What will be sent to Ollama for one GGUF (also what the Modelfile says)."""

    gguf: Path
    template: str
    stops: list[str]
    system: str | None
    family: str
    parameters: dict[str, Any] = field(default_factory=dict)

    def modelfile(self) -> str:
        for text in (self.template, self.system or ""):
            if '"""' in text:
                raise ExportError(
                    'the template or system prompt contains """, which a Modelfile cannot quote'
                )
        lines = [f"FROM ./{self.gguf.name}", f'TEMPLATE """{self.template}"""']
        lines += [f"PARAMETER stop {_quote(s)}" for s in self.stops]
        lines += [f"PARAMETER {k} {v}" for k, v in self.parameters.items() if k != "stop"]
        if self.system:
            lines.append(f'SYSTEM """{self.system}"""')
        return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plan_for(
    gguf: Path,
    *,
    system: str | None = None,
    template: str | None = None,
    stops: list[str] | None = None,
    parameters: dict[str, Any] | None = None,
) -> OllamaPlan:
    """Read the GGUF's chat template and translate it (or take `template`/`stops` as given)."""
    gguf = Path(gguf)
    if not gguf.is_file():
        raise ExportError(f"no GGUF file at {gguf}", fix="tunegate export ID --to gguf first")
    if template is not None:
        if not stops:
            raise ExportError(
                "a custom template needs its end-of-turn markers",
                fix="pass --stop TOKEN for each (e.g. --stop '<|im_end|>')",
            )
        return OllamaPlan(gguf, template, list(stops), system, "custom", dict(parameters or {}))
    jinja, bos, eos = gguf_chat_info(gguf)
    fmt: ChatFormat = detect(jinja, bos, eos)
    found = list(dict.fromkeys([*fmt.stops, *(stops or [])]))
    return OllamaPlan(
        gguf,
        fmt.go_template(),
        found,
        system if system is not None else fmt.default_system,
        fmt.family.name,
        dict(parameters or {}),
    )


def write_modelfile(plan: OllamaPlan) -> Path:
    """`Modelfile` next to the GGUF, for users who run `ollama create -f` themselves."""
    path = plan.gguf.with_name("Modelfile")
    path.write_text(plan.modelfile(), encoding="utf-8")
    return path


def _client(host: str | None) -> Any:
    import ollama

    return ollama.Client(host=host)


def create(
    plan: OllamaPlan,
    name: str,
    *,
    host: str | None = None,
    progress: Callable[[str], None] | None = None,
    sha256: str | None = None,
) -> dict[str, Any]:
    """Upload the GGUF blob (skipped when Ollama has it) and create `name`; returns /api/show.

    `sha256` is the file's hash when already known (the export recorded it), saving a read."""
    import ollama

    from exporters.converter import sha256_file

    client = _client(host)
    say = progress or (lambda _m: None)
    try:
        digest = "sha256:" + (sha256 or sha256_file(plan.gguf))
        if _has_blob(client, digest):
            say(f"blob {digest[:19]} already on the server")
        else:
            say(f"uploading {plan.gguf.name} ({plan.gguf.stat().st_size:,} bytes)")
            if client.create_blob(plan.gguf) != digest:
                raise ExportError(f"{plan.gguf} changed while it was uploaded")
        params: dict[str, Any] = {"stop": plan.stops, **plan.parameters}
        for update in client.create(
            model=name,
            files={plan.gguf.name: digest},
            template=plan.template,
            system=plan.system,
            parameters=params,
            stream=True,
        ):
            say(str(update.status))
        shown = client.show(name)
    except ollama.ResponseError as exc:
        raise ExportError(
            f"Ollama refused: {exc.error} (HTTP {exc.status_code})", fix="check `ollama serve` logs"
        ) from None
    except ConnectionError as exc:
        raise ExportError(
            f"cannot reach Ollama: {exc}",
            fix="start it with `ollama serve`, or set OLLAMA_HOST to where it listens",
        ) from None
    return shown.model_dump(mode="json", exclude_none=True)


def _has_blob(client: Any, digest: str) -> bool:
    """HEAD /api/blobs/<digest> (the client has no method for it; a failure means "upload")."""
    try:
        return client._client.request("HEAD", f"/api/blobs/{digest}").status_code == 200
    except Exception:
        return False


def delete(name: str, *, host: str | None = None) -> None:
    import ollama

    try:
        _client(host).delete(name)
    except ollama.ResponseError as exc:
        if exc.status_code != 404:  # already gone is what undeploy wants
            raise DeployError(f"Ollama refused to delete {name}: {exc.error}") from None


def host_of(options: DeployOptions) -> str:
    """`--host`, else `OLLAMA_HOST` (as the ollama CLI reads it), else the local default."""
    import os

    return options.host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST


class Ollama(RunsHere):
    """The GGUF created as an Ollama model with the training chat template."""

    target = "ollama"
    wants = "gguf"
    options = frozenset({"system", "template", "stops", "host"})

    def accepts(self, src: DeploySource) -> str | None:
        return None

    def prepare(self, src: DeploySource, name: str | None, options: DeployOptions) -> Prepared:
        gguf = Path(str(src.path))
        plan = plan_for(gguf, system=options.system, template=options.template, stops=options.stops)
        modelfile = write_modelfile(plan)
        host = host_of(options)
        say = _stderr if options.progress else None
        return Prepared(
            name or gguf.stem.lower().replace("_", "-"),
            {
                "gguf": str(gguf),
                "modelfile": str(modelfile),
                "family": plan.family,
                "stops": plan.stops,
            },
            endpoint=host,
            artifact_id=src.artifact_id,
            work=(plan, host, say, src.sha256),
        )

    def deploy(self, prepared: Prepared) -> dict[str, Any]:
        plan, host, say, sha = prepared.work
        shown = create(plan, prepared.name, host=host, progress=say, sha256=sha)
        return {"details": shown.get("details")}

    def undeploy(self, dep: Deployment) -> None:
        delete(dep.name, host=dep.endpoint)

    def chat(self, dep: Deployment, messages: Messages, max_tokens: int) -> ChatReply:
        import ollama

        from gateway.journal.deployments import ChatReply
        from gateway.util.retry import http_timeout_s

        client = ollama.Client(host=dep.endpoint, timeout=http_timeout_s())
        try:
            res = client.chat(
                model=dep.name,
                messages=messages,
                options={"temperature": 0, "num_predict": max_tokens},
                stream=False,
            )
        except ollama.ResponseError as exc:
            raise ProviderError(f"Ollama: {exc.error} (HTTP {exc.status_code})") from None
        except ConnectionError as exc:
            raise ProviderError(
                f"cannot reach Ollama at {dep.endpoint}: {exc}", fix="start it with `ollama serve`"
            ) from None
        return ChatReply(
            res.message.content or "", res.done_reason, dep.id, res.model_dump(mode="json")
        )

    def upstream(self, dep: Deployment) -> Upstream:
        """Ollama's own OpenAI-compatible endpoint (docs/openai.md in ollama/ollama)."""
        host = str(dep.endpoint or DEFAULT_HOST)
        host = host if "://" in host else "http://" + host
        return Upstream("http", dep.name, host.rstrip("/") + "/v1")


def _stderr(message: str) -> None:
    import sys

    print(f"ollama: {message}", file=sys.stderr)
