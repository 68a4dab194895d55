"""Helpers shared by the hosted backends' offers: keys, price bands, hosted training time."""

from __future__ import annotations

from typing import Any

from gateway.cost.offer import Offer, PlanContext
from gateway.cost.serving import ServeRoute, dedicated_route
from gateway.cost.training import flops_per_token
from gateway.spec.objectives import FACTS
from gateway.util.units import Range


def base_offer(ctx: PlanContext, provider: str, keys: list[str]) -> Offer:
    """A hosted offer with nothing priced yet; missing keys are noted, not fatal, for planning."""
    offer = Offer(
        provider=provider,
        kind="hosted",
        hardware=None,
        train_usd=Range.zero(),
        train_hours=Range.zero(),
        serve_usd_month=Range.zero(),
        horizon_days=ctx.spec.serving.horizon_days,
    )
    missing = [k for k in keys if not ctx.env.get(k)]
    if missing:
        offer.needs.append(f"needs {' and '.join(missing)} to launch")
    return offer


def band(bands: list[dict[str, Any]], size_b: float) -> dict[str, Any] | None:
    """The first price band whose `max_params_b` covers the model size."""
    return next((b for b in bands if size_b <= b["max_params_b"]), None)


def epoch_tokens(ctx: PlanContext, packing_billed: bool = True) -> float:
    """Tokens billed per epoch; providers that bill padded rows pass packing_billed=False."""
    spec, report = ctx.spec, ctx.report
    if spec.training.packing or packing_billed:
        return report.total_tokens
    return report.examples * spec.training.max_seq_len * FACTS[spec.objective].sequences


def hosted_hours(ctx: PlanContext, tokens: Range | float) -> Range:
    """Queue time plus compute on an H100-class node sized by model band (no provider publishes this)."""
    ht = ctx.catalog.prices["hosted_throughput"]
    tokens = Range.of(tokens)
    if ctx.model.closed:
        rate = Range.of(ht["closed_model_tokens_per_second"])
    else:
        gpu = ctx.catalog.hw(ht["gpu"])
        gpus = band(ht["gpus_by_band"], ctx.model.size_b)["gpus"]  # type: ignore[index]
        fpt = flops_per_token(
            ctx.spec, ctx.model, ctx.catalog.calibration, min(2048.0, ctx.report.avg_tokens)
        )
        rate = Range.of(ht["mfu"]) * (gpu.peak_tflops * 1e12 * gpus / fpt)
    return tokens * rate.inverse() / 3600 + Range.of(ht["queue_hours"])


def no_serving(ctx: PlanContext, offer: Offer) -> bool:
    if ctx.spec.serving.tokens_per_day <= 0:
        offer.serve = "no serving volume given (use --serve)"
        return True
    return False


def dedicated_serving(ctx: PlanContext, label: str, dedicated: dict[str, Any]) -> ServeRoute:
    """A provider's dedicated endpoint, priced per GPU-hour from its `dedicated` price block."""
    spec = ctx.spec
    return dedicated_route(
        label,
        ctx.model,
        ctx.catalog.hw(dedicated["gpu"]),
        Range.of(dedicated["usd_per_gpu_hour"]),
        spec.serving.tokens_per_day,
        spec.serving.always_on,
        ctx.catalog,
        ctx.context_tokens,
        spec.serving.output_share,
    )


def apply_route(offer: Offer, route: ServeRoute | None, missing: str) -> Offer:
    """Put a serving route on the offer, or refuse the offer with the route's reason."""
    if route is None or not route.feasible:
        return offer.refuse(route.reason if route else missing)
    offer.serve, offer.serve_usd_month, offer.serve_usd_per_1m = (
        route.label,
        route.usd_month,
        route.usd_per_1m,
    )
    return offer
