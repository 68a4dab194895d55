"""The interface every deploy target implements, and the values that cross it.

Deploying is split like training (`providers.base`): the facade (`gateway.facade.deploy`) resolves
the user's source into a `DeploySource` of the kind the target `wants`, asks `accepts`, then
`prepare` (local work only: names, files, the meta the journal records), journals the
deployment as pending, and only then calls `deploy`, the one step with a remote side effect.
So a deployment is in the journal before anything is billed, by construction rather than by
each target remembering to write it, and a failure is journaled as failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from exporters.deploy.canary import Probe
    from gateway.catalog import Catalog
    from gateway.cost.deployments import Price
    from gateway.journal import JobRecord
    from gateway.journal.deployments import ChatReply, Deployment
    from gateway.journal.records import Artifact

# what a target deploys: a GGUF file, merged HF weights, an MLX folder, a job (or weights), or
# a GGUF LoRA adapter (to join an engine that already holds its base)
Wants = Literal["gguf", "merged", "mlx", "job", "gguf-adapter"]
ENGINE_CHOICES = ("auto", "shared", "own")  # `--engine`: join the base's engine, or not
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class DeploySource:
    """A user's source, resolved by the facade for one target."""

    ref: str  # as the user gave it, for messages
    job: JobRecord | None = None
    path: Path | None = None  # the GGUF, merged folder, or weights folder to deploy
    artifact_id: str | None = None
    sha256: str | None = None  # of `path`, when an export already recorded it
    fetch: Callable[[], Artifact] | None = None  # the job's artifact, downloaded on demand
    peers: tuple[Deployment, ...] = ()  # the target's live deployments (an engine to join)
    same: Deployment | None = None  # this job's own deployment a resumable target carries on
    alone_because: str | None = None  # why it did not join its base's engine (`--engine`)
    notes: tuple[str, ...] = ()  # how the facade got it ready (a smaller quant that failed)


@dataclass(frozen=True)
class DeployOptions:
    """Options only some targets understand; a target lists the ones it takes."""

    system: str | None = None
    template: str | None = None
    stops: list[str] | None = None
    host: str | None = None
    progress: bool = False
    engine: str = "auto"  # auto | shared | own (targets that share an engine between adapters)
    on: str | None = None  # the cloud a rented fleet is held to (`--on`)
    serve: float | None = None  # tokens/day a fleet is sized for (`--serve`)
    spot: bool = False  # spot replicas with an on-demand floor
    scale_to_zero: bool = False  # no replica while there is no traffic

    def given(self) -> set[str]:
        """The target-specific options set (`progress` is for every target)."""
        return {
            f.name
            for f in fields(self)
            if f.name != "progress" and getattr(self, f.name) and getattr(self, f.name) != "auto"
        }


@dataclass
class Prepared:
    """What `prepare` decided: journaled before `deploy` runs. `remote=False` means there is
    nothing to create (the provider already serves it), so it is journaled live at once."""

    name: str
    meta: dict[str, Any]
    endpoint: str | None = None
    artifact_id: str | None = None
    remote: bool = True
    work: Any = None  # in-process state for `deploy` (never journaled)
    companions: list[Prepared] = field(default_factory=list)  # journaled live once it is


@dataclass(frozen=True)
class Upstream:
    """How `tunegate serve` reaches a deployment: an OpenAI-compatible URL (hosted APIs,
    Ollama), an engine tunegate starts and supervises on a free port (llama.cpp, mlx-lm), or
    only the target's own `chat` (Bedrock speaks Converse, not OpenAI)."""

    kind: Literal["http", "engine", "chat"]
    model: str  # the name the upstream knows the model by
    base_url: str = ""  # up to and including /v1 ("http"; "engine" fills it once started)
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # auth: never logged
    command: tuple[str, ...] = ()  # "engine": argv, with "{port}" for the port it listens on
    logits_flag: tuple[str, ...] = ()  # "engine": what keeps every prompt token's logits
    shared: str = ""  # "engine": the engine group (one process for every member), else own
    body: dict[str, Any] = field(default_factory=dict)  # added to every request (a LoRA pick)
    canary: tuple[Probe, ...] = ()  # "engine": members checked for isolation at each start
    references: str = ""  # the canary's reference answers (a group.json)
    env: dict[str, str] = field(default_factory=dict)  # "engine": set for its process


@runtime_checkable
class Deployer(Protocol):
    target: str
    wants: Wants
    hosts: Literal["self", "hosted"]  # runs on machines the user owns, or a provider bills it
    options: frozenset[str]  # the `DeployOptions` fields it takes

    def accepts(self, src: DeploySource) -> str | None:
        """None, or why this target cannot serve `src` (shown to the user)."""
        ...

    def prepare(self, src: DeploySource, name: str | None, options: DeployOptions) -> Prepared:
        """Everything before the first remote call: the name, files, meta."""
        ...

    def deploy(self, prepared: Prepared) -> dict[str, Any]:
        """The remote side effect; returns more meta, `endpoint` among it when known only now.
        Safe to repeat: names are chosen client-side, so a retry finds what it made."""
        ...

    def undeploy(self, dep: Deployment) -> None:
        """Remove it where it runs; already gone is success."""
        ...

    def chat(self, dep: Deployment, messages: Messages, max_tokens: int) -> ChatReply:
        """One greedy request through the client the target speaks."""
        ...

    def upstream(self, dep: Deployment) -> Upstream:
        """Where `tunegate serve` sends this deployment's requests (keys read here, at start)."""
        ...

    def price(self, dep: Deployment, base: str | None, catalog: Catalog) -> Price:
        """What serving `dep` costs, from the catalog through `gateway.cost.deployments` (the
        usage report, the advice and the plan price through this one answer); `base` is the
        base model it derives from, when known. Never raises: an unknown is `unpriced`."""
        ...


@runtime_checkable
class Shares(Protocol):
    """A target whose deployments can share one engine (an engine group): the upstream of a
    member depends on who else is live in its group, which the server passes in."""

    def wants_for(self, src: DeploySource, options: DeployOptions) -> Wants:
        """What to resolve `src` into: an adapter to join its base's engine, or `wants`."""
        ...

    def upstream_among(self, dep: Deployment, peers: list[Deployment]) -> Upstream:
        """`upstream` for a member of a group, given every live deployment of the target."""
        ...


class RunsHere:
    """A target whose model answers on this machine (llama.cpp, MLX, Ollama): nothing is
    billed, so serving costs this machine's power while it runs."""

    hosts: Literal["self", "hosted"] = "self"

    def price(self, dep: Deployment, base: str | None, catalog: Catalog) -> Price:
        from gateway.cost.deployments import this_machine

        return this_machine(catalog)


class LocalRegistration(RunsHere):
    """A target that registers a local file or folder as it is (llama.cpp, MLX): nothing remote
    is created or removed, and the path is the endpoint."""

    engine = ""  # the label of the engine that runs it (what an eval reports as its backend)
    options = frozenset({"system"})

    def accepts(self, src: DeploySource) -> str | None:
        return None

    def prepare(self, src: DeploySource, name: str | None, options: DeployOptions) -> Prepared:
        path = Path(str(src.path))
        default = (path.stem if path.is_file() else path.name).lower().replace("_", "-")
        return Prepared(
            name or default,
            {"system": options.system},
            endpoint=str(path),
            artifact_id=src.artifact_id,
            remote=False,
        )

    def deploy(self, prepared: Prepared) -> dict[str, Any]:
        return {}

    def undeploy(self, dep: Deployment) -> None:
        return None  # the file stays where the export wrote it


def bearer(var: str, provider: str) -> dict[str, str]:
    """The Authorization header for a provider whose key is in `var` (a clear error if unset)."""
    from gateway.util.secrets import require

    return {"Authorization": f"Bearer {require(var, provider)}"}


def base_url(var: str, default: str, suffix: str = "/v1") -> str:
    """The provider's API root as its SDK reads it from `var`, with the OpenAI-style suffix."""
    import os

    root = (os.environ.get(var) or default).rstrip("/")
    return root if root.endswith(suffix) else root + suffix


def with_system(dep: Deployment, messages: Messages) -> Messages:
    """The deployment's recorded system prompt first, unless the messages bring their own."""
    system = (dep.meta or {}).get("system")
    if system and (not messages or messages[0]["role"] != "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages


def completion(
    label: str, client: Any, model: str, messages: Messages, max_tokens: int, dep_id: str
) -> ChatReply:
    """One chat completion through an OpenAI-style SDK (OpenAI, Together, Fireworks)."""
    from gateway.errors import ProviderError
    from gateway.journal.deployments import ChatReply
    from gateway.util.retry import describe

    try:
        res = client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens, temperature=0
        )
    except Exception as exc:  # any SDK failure becomes one line, with no key in it
        raise ProviderError(f"{label} chat failed: {describe(exc)}") from None
    choice = res.choices[0]
    reason = getattr(choice.finish_reason, "value", choice.finish_reason)
    return ChatReply(choice.message.content or "", reason, dep_id, res.model_dump(mode="json"))


def hosted_base(folder: Path, provider: str) -> str:
    """The id under which `provider` serves the base a weights folder derives from: the
    adapter's `base_model_name_or_path`, or the `source.base` an export recorded."""
    from exporters.adapter import adapter_config
    from gateway.catalog import load_catalog
    from gateway.errors import DeployError

    if (folder / "adapter_config.json").is_file():
        base = adapter_config(folder).get("base_model_name_or_path")
    else:
        from exporters.record import read

        record = read(folder)
        base = record.base if record else None
    if not base:
        raise DeployError(
            f"cannot tell which base model {folder} derives from",
            fix="deploy an adapter folder (its adapter_config.json names the base) or an export folder",
        )
    hosted = load_catalog().model(str(base)).hosted.get(provider)
    if hosted is None:
        raise DeployError(
            f"{provider} does not serve {base}", fix="`tunegate models` lists what it serves"
        )
    return hosted.id
