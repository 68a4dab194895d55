"""Offers shared by the local backends: this machine (owned) and rented GPUs that fit.

Owned hardware costs electricity; rented hardware costs the cheapest on-demand price in the
catalog, or, once SkyPilot has been asked (`tunegate doctor --clouds`), the cheapest price on a
cloud it has enabled, from its own catalogs (spot when the job asks for it). A rented offer on
a cloud that cannot hold a job's folder (mount a bucket) says so in what it needs. The trained
adapter is served self-hosted: on this machine if it keeps up, otherwise on the cheapest
rented GPU (never off-machine under `local_only`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.catalog.hardware import machine_hardware
from gateway.catalog.schema import Hardware
from gateway.cost.offer import NOT_LAUNCHABLE, Offer, PlanContext
from gateway.cost.serving import ServeRoute, cheapest_rented, owned_route
from gateway.cost.training import Stack, TrainingEstimate, estimate_training
from gateway.util.units import Range, human_usd

# returns a reason when the stack cannot run the job on this hardware, else None
Support = Callable[[Hardware, PlanContext], str | None]


def _serve(ctx: PlanContext, hw: Hardware, owned: bool) -> ServeRoute | None:
    tpd = ctx.spec.serving.tokens_per_day
    if tpd <= 0:
        return ServeRoute("none", "no serving volume given (use --serve)", Range.zero())
    share = ctx.spec.serving.output_share
    routes = []
    if owned:
        routes.append(
            owned_route(
                ctx.model, hw, max(1, ctx.machine.gpus), tpd, ctx.catalog, ctx.context_tokens, share
            )
        )
    if not ctx.spec.constraints.local_only:
        rented = cheapest_rented(
            ctx.model, tpd, ctx.spec.serving.always_on, ctx.catalog, ctx.context_tokens, share
        )
        if rented:
            routes.append(rented)
    feasible = [r for r in routes if r.feasible]
    if feasible:
        return min(feasible, key=lambda r: r.usd_month.likely)
    return routes[0] if routes else None


def _offer(
    ctx: PlanContext,
    provider: str,
    stack: Stack,
    hw: Hardware,
    kind: str,
    support: Support,
    renting: Renting | None = None,
) -> Offer:
    spec, model = ctx.spec, ctx.model
    horizon = spec.serving.horizon_days
    offer = Offer(
        provider=provider,
        kind=kind,
        hardware=hw.id,
        train_usd=Range.zero(),
        train_hours=Range.zero(),
        serve_usd_month=Range.zero(),
        horizon_days=horizon,
        model_id=model.id,
        model_params_b=round(model.n_params / 1e9, 3) if model.n_params else None,
    )
    if model.closed:
        return offer.refuse(f"{model.id} is a closed model: only OpenAI can tune it")
    unsupported = support(hw, ctx)
    if unsupported:
        offer.refuse(unsupported)
    gpus = max(1, ctx.machine.gpus) if kind == "local" and hw.vendor == "nvidia" else 1
    available = hw.usable_gb * (gpus if stack == "hf" else 1)
    offer.memory_available_gb = available
    est = _estimate(ctx, offer, stack, hw, "local" if kind == "local" else "rented", available)
    if kind == "rented" and stack == "hf" and est.memory_gb.likely > available:
        sharded = _shard(ctx, est, available)
        if sharded is not None:  # several GPUs of one node, the model sharded across them
            gpus, est = sharded
            offer.gpus = gpus
            offer.settings["resources.gpus"] = gpus
            offer.settings["resources.shard"] = True
            why = f"plan:{gpus} GPUs, sharded (FSDP2): one holds ~{est.memory_gb.likely:.0f} GB"
            offer.settings_why["resources.gpus"] = offer.settings_why["resources.shard"] = why
    offer.train_hours = est.hours
    offer.vram_gb = est.memory_gb
    offer.tokens_per_second = est.tokens_per_second
    offer.assumptions += est.assumptions
    if kind == "local":
        _use_measured(ctx, offer, provider, hw)
    if est.memory_gb.likely > available:
        what = "RAM" if hw.vendor == "cpu" else "GPU memory"
        offer.refuse(
            f"needs ~{est.memory_gb.likely:.1f} GB of {what}; {hw.id} has {available:.1f} GB usable"
        )
    if kind == "local":
        kwh = ctx.catalog.prices["electricity"]["usd_per_kwh"]
        offer.train_usd = offer.train_hours * (hw.watts / 1000 * kwh)
        offer.notes.append(f"your own hardware: electricity only (${kwh}/kWh, {hw.watts:g} W)")
    else:
        hourly = _rent(ctx, offer, hw, renting or Renting())
        if hourly is None:
            return offer.refuse(f"no rental price for {hw.id} in the catalog")
        offer.train_usd = est.hours * hourly * offer.gpus
    route = _serve(ctx, hw, owned=kind == "local")
    if route is None:
        offer.refuse("no way to serve the model under the constraints")
    elif not route.feasible:
        offer.refuse(f"cannot serve {ctx.spec.serving.tokens_per_day:,} tokens/day: {route.reason}")
    else:
        offer.serve_usd_month = route.usd_month
        offer.serve = route.label
        offer.assumptions += route.assumptions
    return offer


def _estimate(
    ctx: PlanContext, offer: Offer, stack: Stack, hw: Hardware, setup: str, available: float
) -> TrainingEstimate:
    """The training estimate, with gradient checkpointing decided from memory when the job
    leaves it open: off where the job fits without it (it costs ~a third more compute), on
    where it does not. The offer records the choice and its price in time."""
    spec, key = ctx.spec, "training.gradient_checkpointing"

    def run(ckpt: bool | None) -> TrainingEstimate:
        training = spec.training.model_copy(update={"gradient_checkpointing": ckpt})
        s = spec.model_copy(update={"training": training})
        return estimate_training(s, ctx.model, ctx.report, hw, stack, ctx.catalog, setup)  # type: ignore[arg-type]

    if spec.training.gradient_checkpointing is not None:
        return run(spec.training.gradient_checkpointing)
    if stack == "unsloth":  # it offloads checkpointed activations by design (its memory model)
        offer.settings[key], offer.settings_why[key] = True, "plan:on, Unsloth offloads activations"
        return run(True)
    off, on = run(False), run(True)
    extra = off.tokens_per_second.likely / on.tokens_per_second.likely - 1  # compute time
    fits = off.memory_gb.likely <= available
    offer.settings[key] = not fits
    if fits:
        why = (
            f"gradient checkpointing off: the job fits without it (~{off.memory_gb.likely:.1f} "
            f"of {available:.1f} GB); on would add {extra:.0%} time"
        )
    else:
        why = (
            f"gradient checkpointing on: without it the job needs ~{off.memory_gb.likely:.1f} GB "
            f"of {available:.1f} GB; it adds {extra:.0%} time"
        )
    offer.settings_why[key] = "plan:off, fits without it" if fits else "plan:on, needed to fit"
    offer.assumptions.append(why)
    return off if fits else on


def _use_measured(ctx: PlanContext, offer: Offer, provider: str, hw: Hardware) -> None:
    """Replace the modelled throughput with what a finished job measured here: the same base
    model's own rate, else the model's estimate scaled by how far off it was for a measured
    job of the same size class (`gateway.cost.measured`)."""
    from gateway.cost.measured import correction, lookup

    row = lookup(provider, hw.id, ctx.spec.base_model, ctx.spec.method)
    modelled = offer.tokens_per_second
    if row is not None:
        band = ctx.catalog.calibration["measured_here_band"]
        tok_s = row["tokens_per_s"]
        rate = Range(band["low"] * tok_s, tok_s, band["high"] * tok_s)
        tokens = ctx.report.total_tokens * ctx.spec.training.epochs
        offer.train_hours = Range.of(tokens) * rate.inverse() / 3600
        offer.assumptions.append(
            f"throughput measured on this machine by job {row['job_id']} ({row['at']}): "
            f"{tok_s:,.0f} tokens/s (x{band['low']:g}-{band['high']:g})"
        )
    else:
        fix = correction(provider, hw.id, ctx.spec.method, offer.model_params_b)
        if fix is None or modelled is None:
            return
        band = ctx.catalog.calibration["measured_class_band"]
        likely = modelled.likely * fix.factor
        rate = Range(band["low"] * likely, likely, band["high"] * likely)
        offer.train_hours = offer.train_hours * (modelled.likely / likely)
        offer.assumptions.append(
            f"throughput scaled x{fix.factor:.2f} by job {fix.row['job_id']} ({fix.row['at']}): "
            f"{fix.row['model']} measured {fix.row['tokens_per_s']:,.0f} tokens/s here where "
            f"the model said {fix.row['estimated_tokens_per_s']:,.0f} (same size class, "
            f"{fix.size}; x{band['low']:g}-{band['high']:g})"
        )
    offer.tokens_per_second = rate
    offer.modelled_tokens_per_second = modelled


@dataclass
class Renting:
    """What renting looks like from here, read once per plan: SkyPilot's cached view (None
    until `tunegate doctor --clouds`)."""

    view: Any = None

    @classmethod
    def here(cls) -> Renting:
        from providers.runners.sky_prices import cached

        return cls(cached())


def _shard(
    ctx: PlanContext, est: TrainingEstimate, available: float
) -> tuple[int, TrainingEstimate] | None:
    """The fewest GPUs of one node whose share fits: each holds 1/n of the weights and the
    optimizer states (FSDP2) and its own activations; the rate is n x one GPU's x efficiency
    (calibration.yaml `multi_gpu`). None when even the largest count does not fit."""
    import dataclasses

    cal = ctx.catalog.calibration.get("multi_gpu")
    parts = est.memory_parts_gb
    if not cal or not parts:
        return None
    mem = ctx.catalog.calibration["memory"]
    shared = parts["weights"] + parts["trainable_and_optimizer"]
    own = parts["activations"] + parts["logits"]
    eff = Range.of(cal["efficiency"])
    for n in cal["gpu_counts"]:
        per_gpu = (shared / n + own) * Range.of(mem["fragmentation"]) + Range.of(
            mem["runtime_overhead_gb"]
        )
        if per_gpu.likely <= available:
            rate = est.tokens_per_second * eff * n
            setup = Range.of(ctx.catalog.calibration["setup_hours"]["rented"])
            hours = (est.hours + setup * -1) * (eff * n).inverse() + setup
            note = (
                f"{n} GPUs of one node, the model sharded across them (FSDP2 under torchrun): "
                f"~{per_gpu.likely:.1f} GB each, {eff.likely:.0%} of {n}x one GPU's rate"
            )
            return n, dataclasses.replace(
                est,
                memory_gb=per_gpu,
                tokens_per_second=rate,
                hours=hours,
                assumptions=[*est.assumptions, note],
            )
    return None


def _rent(ctx: PlanContext, offer: Offer, hw: Hardware, renting: Renting) -> float | None:
    """The hourly price of one `hw` GPU (sets the offer's cloud and what launching needs)."""
    from providers.runners.sky_prices import cloud_blocker

    res = ctx.spec.resources
    if renting.view is not None and hw.skypilot:
        clouds = [res.cloud.lower()] if res.cloud else None
        row = renting.view.cheapest(hw.skypilot, offer.gpus, spot=res.spot, clouds=clouds)
        if row is not None:
            offer.cloud = row["cloud"]
            offer.notes.append(
                f"SkyPilot's catalog: {row['cloud']} {row['region']} {row['instance_type']} at "
                f"{human_usd(row['price'])}/h{' spot' if res.spot else ''}"
            )
            _synced(ctx, offer, renting)
            return float(row["price"]) / offer.gpus  # the instance holds `gpus` of them
        enabled = ", ".join(renting.view.enabled) or "none"
        offer.needs.append(
            f"no enabled cloud rents {hw.skypilot} (enabled: "
            f"{enabled}; `sky check`, then `tunegate doctor --clouds`)"
        )
    rent = hw.cheapest_rent()
    if rent is None:
        return None
    offer.cloud = rent.cloud
    offer.notes.append(
        f"{rent.cloud} {rent.instance or ''} at {human_usd(rent.usd_per_hour)}/h "
        f"({rent.source}, {rent.as_of})".replace("  ", " ")
    )
    blocked = cloud_blocker(rent.cloud, ctx.catalog, renting.view)
    if blocked:  # priced as advice: tunegate run on that machine can still use it
        offer.needs.append(f"{NOT_LAUNCHABLE}: {blocked}")
        offer.notes.append("launch another cloud with --on (aws, gcp, lambda, ...)")
    _synced(ctx, offer, renting)
    return rent.usd_per_hour


def _synced(ctx: PlanContext, offer: Offer, renting: Renting) -> None:
    """A cloud that cannot mount a bucket still runs the job: its worker keeps the job's
    folder in the bucket (`providers.runners.bucket_sync`). The offer pins that cloud, so
    launching it asks SkyPilot for that cloud's GPU and the task is built for that route."""
    from providers.runners.sky_prices import cloud_mounts

    if offer.cloud is None or cloud_mounts(offer.cloud, ctx.catalog, renting.view):
        return
    offer.settings["resources.cloud"] = offer.cloud
    offer.settings_why["resources.cloud"] = f"plan:cheapest on {offer.cloud}, folder synced"
    offer.notes.append(
        f"{offer.cloud} cannot mount a bucket: the worker keeps the job's folder in it through "
        "the S3 API (each complete checkpoint, metrics and status; resume pulls the newest)"
    )


def local_offers(
    ctx: PlanContext, provider: str, stack: Stack, support: Support, rentable: bool = True
) -> list[Offer]:
    """This machine, then every rentable NVIDIA GPU in the catalog."""
    here = machine_hardware(ctx.catalog, ctx.machine)
    offers = [_offer(ctx, provider, stack, here, "local", support)]
    if ctx.model.closed or not rentable:
        return offers
    renting = Renting.here()
    for hw in ctx.catalog.hardware.values():
        if hw.vendor == "nvidia" and hw.rent:
            offers.append(_offer(ctx, provider, stack, hw, "rented", support, renting))
    return offers
