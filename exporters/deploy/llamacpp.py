"""llama.cpp: a local GGUF registered as a deployment, alone or in an engine group.

Alone, a GGUF file (a merged fine-tune, or any model) runs in llama-cpp-python's server, which
`tunegate serve` starts and supervises; `tunegate chat` loads it in-process. Nothing is billed;
the GGUF's own chat template formats the conversation.

In a group (`exporters.deploy.groups`), a LoRA fine-tune joins the engine of its base: one
`llama-server` process holds the base GGUF and every member's GGUF adapter, each request names
every adapter's scale, and the base answers under its own name. A join is proven isolated
(`exporters.deploy.canary`) before the deployment goes live, and again at every engine start.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from exporters.deploy import groups, llama_server
from exporters.deploy.base import (
    DeployOptions,
    DeploySource,
    LocalRegistration,
    Messages,
    Prepared,
    Upstream,
    Wants,
    with_system,
)
from exporters.deploy.canary import Probe, check
from gateway.errors import DeployError
from gateway.journal.deployments import ChatReply, Deployment

CONTEXT = 2048
TARGET = "llamacpp"


class LlamaCpp(LocalRegistration):
    target = TARGET
    engine = "llama.cpp"
    wants = "gguf"
    options = frozenset({"system", "engine"})

    # --- which form: an adapter in the base's engine, or a GGUF of its own -----------------
    def wants_for(self, src: DeploySource, options: DeployOptions) -> Wants:
        """An adapter joins its base's engine unless told not to, or llama-server is missing
        (then, with `--engine shared`, that is an error; with `auto`, its own engine)."""
        if options.engine == "own" or not _adapter_like(src):
            return self.wants
        if llama_server.binary() is None:
            if options.engine == "shared":
                llama_server.require_binary()
            return self.wants
        return "gguf-adapter"

    def join_problems(self, adapter: Path) -> list[str]:
        """Why this adapter cannot join a llama.cpp group (empty: it can)."""
        from exporters.adapter import read_adapter
        from exporters.gguf import adapter_problems

        if not (adapter / "adapter_config.json").is_file():
            return [f"{adapter} is not a LoRA adapter (a full fine-tune has its own weights)"]
        return adapter_problems(read_adapter(adapter))

    # --- deploy ----------------------------------------------------------------------------
    def prepare(self, src: DeploySource, name: str | None, options: DeployOptions) -> Prepared:
        from exporters.record import read

        record = read(src.path) if src.path is not None else None
        if record is None or record.kind != "gguf-adapter":
            prepared = super().prepare(src, name, options)
            if src.alone_because:
                prepared.meta["own_engine"] = src.alone_because
            return prepared
        lora = Path(str(src.path))
        group = groups.open_group(TARGET, Path(str(record.base)), progress=options.progress)
        key = groups.member_key(lora)
        loras = [m for m in _loras(group.key, src.peers) if m != str(lora)] + [str(lora)]
        default = Path(str(record.adapter or lora.stem)).name.lower().replace("_", "-")
        prepared = Prepared(
            name or default,
            {"system": options.system, "group": group.key, "member": key, "lora": str(lora)},
            endpoint=str(lora),
            artifact_id=src.artifact_id,
            remote=True,  # the canary runs before it is live
            work=(group, loras, key),
        )
        if not any(_member(d, group.key) == groups.BASE for d in src.peers):
            prepared.companions.append(
                Prepared(
                    _base_name(group.base),
                    {"group": group.key, "member": groups.BASE},
                    endpoint=str(group.engine_model),
                    remote=False,
                )
            )
        return prepared

    def deploy(self, prepared: Prepared) -> dict[str, Any]:
        if prepared.work is None:
            return {}
        group, loras, key = prepared.work
        _record_references(group, key, prepared.name, Path(loras[-1]))
        probes = _probes(group, loras)
        log = group.folder / "canary.log"
        with llama_server.running(llama_server.command(group.engine_model, loras), log) as url:
            report = check(url, {}, probes, group.prints())
        if not report.passed:
            raise DeployError(report.summary(), where=str(log))
        return {"canary": report.summary()}

    # --- serve -----------------------------------------------------------------------------
    def upstream(self, dep: Deployment) -> Upstream:
        from gateway.catalog.extras import require

        if dep.meta.get("group"):
            raise DeployError(f"{dep.name} is in an engine group; its upstream needs its peers")
        require("llama_cpp", "sse_starlette", what="serving a GGUF deployment")
        if not Path(str(dep.endpoint)).is_file():
            raise DeployError(
                f"the GGUF of {dep.name} is gone: {dep.endpoint}",
                fix=f"export it again and `tunegate deploy FILE --to llamacpp --name {dep.name}`",
            )
        command = (sys.executable, "-m", "llama_cpp.server", "--model", str(dep.endpoint))
        command += ("--host", "127.0.0.1", "--port", "{port}", "--model_alias", dep.name)
        command += ("--n_ctx", str(CONTEXT))
        return Upstream("engine", dep.name, command=command, logits_flag=("--logits_all", "true"))

    def upstream_among(self, dep: Deployment, peers: list[Deployment]) -> Upstream:
        """A group member: the group's one llama-server, with this member's scale list."""
        key = dep.meta.get("group")
        if not key:
            return self.upstream(dep)
        group = groups.load(groups.engines_home() / key)
        if group is None or not group.engine_model.is_file():
            raise DeployError(
                f"the engine group {key} of {dep.name} is gone",
                fix=f"deploy its job again: tunegate deploy JOB --to {TARGET}",
            )
        loras = _loras(key, peers)
        mine = dep.meta.get("lora") if dep.meta.get("member") != groups.BASE else None
        return Upstream(
            "engine",
            dep.name,
            command=llama_server.command(group.engine_model, loras),
            shared=key,
            body=llama_server.scales(loras, mine),
            canary=tuple(_probes(group, loras)),
            references=str(group.file),
        )

    def chat(self, dep: Deployment, messages: Messages, max_tokens: int) -> ChatReply:
        from llama_cpp import Llama

        model, lora = str(dep.endpoint), None
        if dep.meta.get("group"):
            group = groups.load(groups.engines_home() / dep.meta["group"])
            if group is None:
                raise DeployError(f"the engine group of {dep.name} is gone")
            model = str(group.engine_model)
            lora = dep.meta.get("lora") if dep.meta.get("member") != groups.BASE else None
        llm = Llama(model_path=model, lora_path=lora, n_ctx=CONTEXT, verbose=False)
        try:
            res = llm.create_chat_completion(
                with_system(dep, messages), max_tokens=max_tokens, temperature=0.0
            )
        finally:
            llm.close()
        choice = res["choices"][0]
        return ChatReply(
            choice["message"]["content"] or "", choice["finish_reason"], dep.id, dict(res)
        )


def _adapter_like(src: DeploySource) -> bool:
    """A LoRA fine-tune: a job whose method trains an adapter, an adapter folder, or a GGUF
    adapter export."""
    from exporters.record import read

    if src.path is not None:
        record = read(src.path)
        if record is not None and record.kind == "gguf-adapter":
            return True
        return src.path.is_dir() and (src.path / "adapter_config.json").is_file()
    if src.job is not None:
        return str(src.job.spec.get("method") or "lora") != "full"
    return False


def _member(dep: Deployment, key: str) -> str | None:
    return dep.meta.get("member") if dep.meta.get("group") == key else None


def _loras(key: str, peers: Any) -> list[str]:
    """The group's adapter files, oldest member first (the order is the scale list's ids)."""
    found: list[str] = []
    for dep in sorted(peers, key=lambda d: d.created_at):
        lora = dep.meta.get("lora")
        member = dep.meta.get("group") == key and dep.meta.get("member") != groups.BASE
        if member and lora and lora not in found and Path(lora).is_file():
            found.append(lora)
    return found


def _probes(group: groups.Group, loras: list[str]) -> list[Probe]:
    """The base and every adapter, named as the group's references name them."""
    members: list[str | None] = [None, *loras]
    keys = [groups.BASE if m is None else groups.member_key(Path(m)) for m in members]
    return [
        Probe(group.label(k), llama_server.scales(loras, m))
        for k, m in zip(keys, members, strict=True)
    ]


def _record_references(group: groups.Group, key: str, label: str, lora: Path) -> None:
    """The base's and the newcomer's reference answers, each from an engine holding only it
    (the base's once, when the group is made)."""
    base = llama_server.command(group.engine_model, [])
    group.reference(groups.BASE, "base", base, Probe(groups.BASE))
    argv = llama_server.command(group.engine_model, [str(lora)])
    group.reference(key, label, argv, Probe(key, llama_server.scales([str(lora)], str(lora))))


def _base_name(base: Path) -> str:
    return base.name.lower().replace("_", "-")
