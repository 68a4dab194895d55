"""Serving many fine-tunes of one base from one fleet (an engine group per replica).

One fleet sized for the sum of every sharing fine-tune's traffic, at a capacity lowered by the
cost of batching several adapters (`multi_lora_overhead` in calibration.yaml, an assumption
until measured on a GPU). Each fine-tune carries the share of the fleet its traffic uses
(*allocated*, for usage and advice); adding one more costs the difference between the fleet for
K+1 and for K (*marginal*: $0 while the fleet has headroom, the "deploy here?" decision). The
per-fine-tune break-even against hosted per-token serving falls by about the number of
fine-tunes sharing the fleet (../shared/reference/serving-scale.md §3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gateway.catalog import Catalog
from gateway.catalog.schema import ModelInfo
from gateway.cost.serving import ServeRoute, breakeven_tokens_per_day, cheapest_rented
from gateway.util.units import Range


@dataclass
class Sharing:
    """This fine-tune served alone, or on one fleet with `adapters - 1` others of its base."""

    adapters: int  # fine-tunes on the shared fleet, this one included
    tokens_per_day: float  # this fine-tune's volume
    total_tokens_per_day: float
    volume_source: str  # "measured by tunegate serve" | "stated" | a mix, in words
    own: ServeRoute | None  # a fleet of its own
    shared: ServeRoute | None  # the one fleet for all of them
    share_usd_month: Range = field(default_factory=Range.zero)
    marginal_usd_month: Range = field(default_factory=Range.zero)  # one more like this one
    overhead: Range = field(default_factory=Range.zero)
    overhead_source: str = ""
    hosted_usd_per_1m: float | None = None
    breakeven_tokens_per_day: float | None = None  # per fine-tune, shared, vs hosted per token
    breakeven_fleet: str = ""

    def to_json(self) -> dict[str, Any]:
        def route(r: ServeRoute | None) -> dict[str, Any] | None:
            if r is None:
                return None
            return {"label": r.label, "usd_month": r.usd_month.to_json(), "replicas": r.replicas}

        return {
            "adapters": self.adapters,
            "tokens_per_day": self.tokens_per_day,
            "total_tokens_per_day": self.total_tokens_per_day,
            "volume_source": self.volume_source,
            "own": route(self.own),
            "shared": route(self.shared),
            "share_usd_month": self.share_usd_month.to_json(),
            "marginal_usd_month": self.marginal_usd_month.to_json(),
            "multi_lora_overhead": self.overhead.to_json(),
            "overhead_source": self.overhead_source,
            "hosted_usd_per_1m": self.hosted_usd_per_1m,
            "breakeven_tokens_per_day_per_fine_tune": self.breakeven_tokens_per_day,
            "breakeven_fleet": self.breakeven_fleet,
        }


def overhead(catalog: Catalog, adapters: int) -> Range:
    """Capacity lost to batching `adapters` distinct adapters (none for one: it is merged or
    served alone)."""
    if adapters <= 1:
        return Range.zero()
    return Range.of(dict(catalog.calibration["multi_lora_overhead"]))


def shared_fleet(
    model: ModelInfo,
    volumes: list[float],
    always_on: bool,
    catalog: Catalog,
    context_tokens: int,
    output_share: float,
) -> ServeRoute | None:
    """The cheapest rented fleet that serves every volume from one base's engines."""
    derate = overhead(catalog, len(volumes))
    route = cheapest_rented(
        model, sum(volumes), always_on, catalog, context_tokens, output_share, derate
    )
    if route is not None and len(volumes) > 1:
        route.label += f", shared by {len(volumes)} fine-tunes"
    return route


def sharing(
    model: ModelInfo,
    tokens_per_day: float,
    others: list[float],
    catalog: Catalog,
    *,
    always_on: bool = True,
    context_tokens: int = 1024,
    output_share: float = 0.3,
    hosted_usd_per_1m: float | None = None,
    volume_source: str = "stated",
) -> Sharing:
    """This fine-tune (`tokens_per_day`) alone and with `others` (their volumes) on one fleet."""
    volumes = [tokens_per_day, *others]
    args = (always_on, catalog, context_tokens, output_share)
    own = shared_fleet(model, [tokens_per_day], *args)
    shared = shared_fleet(model, volumes, *args)
    total = sum(volumes)
    found = Sharing(len(volumes), tokens_per_day, total, volume_source, own, shared)
    found.overhead = overhead(catalog, max(2, len(volumes)))
    found.overhead_source = str(catalog.calibration["multi_lora_overhead"]["source"])
    found.hosted_usd_per_1m = hosted_usd_per_1m
    if shared is not None and total > 0:
        found.share_usd_month = shared.usd_month * (tokens_per_day / total)
        bigger = shared_fleet(model, [*volumes, tokens_per_day], *args)
        if bigger is not None:
            found.marginal_usd_month = Range(
                max(0.0, bigger.usd_month.low - shared.usd_month.low),
                max(0.0, bigger.usd_month.likely - shared.usd_month.likely),
                max(0.0, bigger.usd_month.high - shared.usd_month.high),
            )
    if hosted_usd_per_1m:
        found.breakeven_tokens_per_day, found.breakeven_fleet = breakeven_per_fine_tune(
            hosted_usd_per_1m, model, catalog, len(volumes), context_tokens, output_share
        )
    return found


def breakeven_per_fine_tune(
    usd_per_1m: float,
    model: ModelInfo,
    catalog: Catalog,
    adapters: int,
    context_tokens: int,
    output_share: float,
) -> tuple[float | None, str]:
    """Tokens/day per fine-tune above which `adapters` fine-tunes sharing a rented fleet (always
    on) cost less each than `usd_per_1m` per token hosted."""
    loss = overhead(catalog, adapters).likely
    found, label = breakeven_tokens_per_day(
        usd_per_1m, model, catalog, context_tokens, output_share, adapters=adapters, loss=loss
    )
    return (math.ceil(found) if found is not None else None), label
