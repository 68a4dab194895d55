"""One SkyServe service for several fine-tunes of one base: the engine group, on rented GPUs.

A rented deployment is a *member* of a service. LoRA fine-tunes of the same base, on the same
terms (spot or not, always on or scaling to zero, the cloud they are held to), share one
service: one vLLM engine per replica holding every member's adapter (`--lora-modules`), the
fleet sized for the sum of their traffic at the capacity multi-LoRA batching leaves
(`gateway.cost.sharing`), so K small fine-tunes pay for one fleet rather than K. Each member's
deployment carries the service's spec (the same for all) and its own part: its adapter, its
traffic and its *share* of the fleet (its traffic over the total), which is what it is priced
and accrued at, so the members' costs add up to the fleet's once.

Who the members are is the journal's answer (live deployments naming the service), never a
member's copy of the list, so a copy made stale by a crash cannot drop or resurrect one.
"""

from __future__ import annotations

import math
from typing import Any

from exporters.deploy.vllm import RANKS
from gateway.journal.deployments import Deployment

MAX_MEMBERS = 8  # adapters one vLLM engine batches together (`--max-loras`) before it splits
JOINS = ("live",)
OWN = "--engine own"  # a deployment that asked for a service of its own: none joins it
# the service's spec and fleet: the same in every member's meta
SERVICE_FIELDS = ("service", "engine", "base", "members", "model_uri", "llama_cpp", "context",
                  "max_lora_rank", "accelerator", "hardware", "gpus", "cloud", "min_replicas",
                  "max_replicas",
                  "target_qps", "spot", "ondemand_base", "usd_per_gpu_hour", "price_source",
                  "route", "plan_usd_month", "total_tokens_per_day", "always_on", "held_to",
                  "output_share", "spec_sha")  # fmt: skip


def member(dep_name: str, uri: str, rank: int, tokens_per_day: float, context: int) -> dict:
    return {"name": dep_name, "uri": uri, "rank": rank, "tokens_per_day": tokens_per_day,
            "context": context}  # fmt: skip


def member_of(dep: Deployment) -> dict[str, Any]:
    """A live deployment's own part, as `fleet_meta` takes it."""
    m = dep.meta or {}
    return member(dep.name, str(m.get("adapter_uri") or m.get("model_uri")),
                  int(m.get("lora_rank") or 16), float(m.get("tokens_per_day") or 0),
                  int(m.get("own_context") or m.get("context") or 1024))  # fmt: skip


def members(service: str, peers: tuple[Deployment, ...] | list[Deployment], but: str = "") -> list:
    """The live deployments of `service`, oldest first, except the one with id `but`."""
    found = [d for d in peers if (d.meta or {}).get("service") == service and d.id != but]
    return sorted((d for d in found if d.state in JOINS), key=lambda d: d.created_at)


def to_join(
    peers: tuple[Deployment, ...],
    me: dict[str, Any],
    base: str,
    terms: dict[str, Any],
    catalog: Any,
) -> tuple[str | None, str]:
    """The service this LoRA fine-tune (`me`) of `base` joins on `terms` (spot, always_on,
    held_to), or None and why not: each same-base service's reason. One joins only where the
    fleet for all costs no more than the fleet it has plus one for `me` alone (batching
    adapters costs capacity, and fleets come in whole replicas)."""
    services: dict[str, list[Deployment]] = {}
    for dep in sorted(peers, key=lambda d: d.created_at):
        if dep.target == "rented" and dep.state in JOINS and (dep.meta or {}).get("service"):
            services.setdefault(str(dep.meta["service"]), []).append(dep)
    why: list[str] = []
    for service, deps in services.items():
        meta = deps[0].meta or {}
        if meta.get("engine") != "vllm" or meta.get("base") != base:
            continue
        if meta.get("own_service") == OWN:
            why.append(f"{service} keeps to itself ({OWN})")
            continue
        differs = [k for k in ("spot", "always_on") if bool(meta.get(k)) != bool(terms[k])]
        if terms.get("held_to") and terms["held_to"] != meta.get("cloud"):
            differs.append(f"cloud ({meta.get('cloud')}, not {terms['held_to']})")
        if differs:
            why.append(f"{service} differs in {', '.join(differs)}")
            continue
        if len(deps) >= MAX_MEMBERS:
            why.append(f"{service} already serves {MAX_MEMBERS} adapters")
            continue
        group = [member_of(d) for d in deps]
        now, alone, joined = (
            float(fleet_meta(base, g, terms, catalog)["plan_usd_month"])
            for g in (group, [me], [*group, me])
        )
        if joined > now + alone:
            why.append(f"{service} would cost ${joined:,.0f}/month with it, ${now + alone:,.0f}"
                       " as two fleets")  # fmt: skip
            continue
        return service, ""
    return None, "; ".join(why) or f"no live rented service of {base} to join"


def fleet_meta(
    base: str,
    group: list[dict[str, Any]],
    terms: dict[str, Any],
    catalog: Any,
    *,
    engine: str = "vllm",
) -> dict[str, Any]:
    """The service's spec and fleet for these members: the plan's rented route for their
    total traffic (capacity derated for batching several adapters), its replicas between
    the plan's count and about 1.5x, the QPS per replica the model says one keeps up with."""
    from gateway.cost.serving import rented_fleet
    from gateway.cost.sharing import overhead
    from gateway.errors import DeployError

    total = sum(float(m["tokens_per_day"]) for m in group)
    context = max(int(m["context"]) for m in group)
    always_on = bool(terms["always_on"])
    fleet = rented_fleet(
        catalog.model(base), total, always_on, catalog, context, float(terms["output_share"]),
        cloud=terms.get("held_to"), derate=overhead(catalog, len(group)),
    )  # fmt: skip
    if fleet is None:
        where = f" on {terms['held_to']}" if terms.get("held_to") else ""
        raise DeployError(
            f"no rented GPU{where} in the catalog can serve {base}",
            fix="tunegate plan JOB --serve VOLUME shows the serving routes and why",
        )
    route, hw, rent = fleet.route, fleet.hardware, fleet.rent
    replicas = max(1, route.replicas) if always_on else 0
    cap = route.capacity_tok_s.likely if route.capacity_tok_s else 1.0
    spot = bool(terms["spot"])
    meta: dict[str, Any] = {
        "engine": engine,
        "base": base,
        "members": [{k: m[k] for k in ("name", "uri", "rank")} for m in group],
        "max_lora_rank": next(r for r in RANKS if r >= max(int(m["rank"]) for m in group)),
        "context": context,
        "accelerator": hw.skypilot,
        "hardware": hw.id,
        "gpus": route.gpus,
        "cloud": rent.cloud,
        "min_replicas": replicas,
        "max_replicas": max(replicas + 1, math.ceil(replicas * 1.5), route.replicas),
        "target_qps": round(cap * 0.7 / context, 3),
        "spot": spot,
        "ondemand_base": 1 if spot else 0,
        "usd_per_gpu_hour": (rent.spot_usd_per_hour if spot else None) or rent.usd_per_hour,
        "price_source": rent.source,
        "route": route.label,
        "plan_usd_month": round(route.usd_month.likely, 2),
        "total_tokens_per_day": total,
        **{k: terms[k] for k in ("always_on", "held_to", "output_share")},
    }
    return meta


def share(meta: dict[str, Any]) -> float:
    """This member's part of the fleet: its traffic over the service's (1 when alone)."""
    total = float(meta.get("total_tokens_per_day") or 0)
    own = float(meta.get("tokens_per_day") or 0)
    if len(meta.get("members") or []) <= 1 or total <= 0:
        return 1.0
    return own / total


def synced(dep: Deployment, service_meta: dict[str, Any]) -> dict[str, Any]:
    """A member's meta with the service's new spec (its own part and its costs kept; why it
    had a service of its own is gone once it shares one)."""
    meta = {**(dep.meta or {}), **{k: service_meta[k] for k in SERVICE_FIELDS if k in service_meta}}
    if len(meta.get("members") or []) > 1:
        meta.pop("own_service", None)
    return meta
