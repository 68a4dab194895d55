"""Serving estimates: what it costs per month to answer `tokens_per_day` with the tuned model.

Three ways: hosted per token (price x volume), dedicated or rented GPUs (replicas x GPUs x
$/h x 730, sized from a throughput model), and an owned machine (electricity). The throughput
model and its assumptions (`self_hosting` in prices.yaml) are documented in docs/estimates.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gateway.catalog import Catalog
from gateway.catalog.schema import Hardware, ModelInfo
from gateway.util.units import DAYS_PER_MONTH, GB, HOURS_PER_MONTH, Range, human_count, human_usd

MAX_GPUS_PER_REPLICA = 8


@dataclass
class ServeRoute:
    """One way to serve the model, priced per month."""

    kind: str  # hosted-token | hosted-dedicated | provisioned | rented | owned | none
    label: str
    usd_month: Range
    feasible: bool = True
    reason: str = ""
    usd_per_1m: float | None = None  # per-token routes only
    capacity_tok_s: Range | None = None
    gpus: int = 0
    replicas: int = 0
    assumptions: list[str] = field(default_factory=list)


def fleet(replicas: int, gpus: int, hardware_id: str) -> str:
    """'3 x l4-24gb' or '2 replicas of 4 x h100-80gb'."""
    if gpus == 1:
        return f"{replicas} x {hardware_id}"
    return f"{replicas} replica{'s' if replicas > 1 else ''} of {gpus} x {hardware_id}"


def blended_per_1m(input_usd: float, output_usd: float, output_share: float) -> float:
    return input_usd * (1 - output_share) + output_usd * output_share


def per_token_route(label: str, usd_per_1m: float, tokens_per_day: float) -> ServeRoute:
    monthly = usd_per_1m * tokens_per_day / 1e6 * DAYS_PER_MONTH
    return ServeRoute(
        "hosted-token",
        f"{label} at {human_usd(usd_per_1m)}/1M tokens",
        Range.of(monthly),
        usd_per_1m=usd_per_1m,
    )


def gpus_to_fit(model: ModelInfo, hw: Hardware, sh: dict[str, Any]) -> int | None:
    """GPUs needed to hold 16-bit weights plus runtime and a minimum KV cache (None: > 8)."""
    need = model.n_params * 2 / GB * 1.1 + sh["runtime_overhead_gb"]
    n = max(1, math.ceil(need / hw.usable_gb))
    return n if n <= MAX_GPUS_PER_REPLICA else None


def capacity(
    model: ModelInfo,
    hw: Hardware,
    n_gpus: int,
    sh: dict[str, Any],
    context_tokens: int,
    output_share: float,
) -> Range:
    """Tokens/s one replica sustains, blending compute-bound prefill and bandwidth-bound decode."""
    weights = model.n_params * 2
    free_kv = n_gpus * hw.usable_gb * GB - weights * 1.0 - sh["runtime_overhead_gb"] * GB
    kv_limit = max(1.0, free_kv / (model.kv_bytes_per_token * max(256, context_tokens)))
    peak = n_gpus * hw.peak_tflops * 1e12
    prefill = peak * sh["prefill_mfu"] / (2 * model.n_active)
    decode_cap = peak * sh["decode_mfu_cap"] / (2 * model.n_active)
    step_rate = n_gpus * hw.bandwidth_gbs * GB * sh["bandwidth_efficiency"] / weights

    def blended(concurrency: float) -> float:
        decode = min(min(concurrency, kv_limit) * step_rate, decode_cap)
        return 1.0 / ((1 - output_share) / prefill + output_share / decode)

    return Range.of(sh["concurrency"]).map(blended)


def _sized(
    kind: str,
    label: str,
    model: ModelInfo,
    hw: Hardware,
    usd_per_gpu_hour: Range,
    tokens_per_day: float,
    always_on: bool,
    sh: dict[str, Any],
    context_tokens: int,
    output_share: float,
    derate: Range | None = None,
) -> ServeRoute:
    n = gpus_to_fit(model, hw, sh)
    if n is None:
        return ServeRoute(
            kind,
            label,
            Range.zero(),
            False,
            f"{model.id} needs more than {MAX_GPUS_PER_REPLICA} x {hw.id} to serve",
        )
    cap = capacity(model, hw, n, sh, context_tokens, output_share)
    if derate is not None:  # several adapters batched: the worst capacity with the worst loss
        cap = Range(
            cap.low * (1 - derate.high),
            cap.likely * (1 - derate.likely),
            cap.high * (1 - derate.low),
        )
    needed = tokens_per_day / 86_400 / sh["target_utilization"]
    if tokens_per_day <= 0:
        usd, replicas = Range.zero(), 0
    elif always_on:
        reps = Range(
            math.ceil(needed / cap.high),
            math.ceil(needed / cap.likely),
            math.ceil(needed / cap.low),
        )
        usd, replicas = reps * usd_per_gpu_hour * (n * HOURS_PER_MONTH), int(reps.likely)
    else:
        busy_hours = cap.inverse() * (needed * 86_400 * DAYS_PER_MONTH / 3600)
        usd, replicas = busy_hours * usd_per_gpu_hour * n, math.ceil(needed / cap.likely)
    mode = "always on" if always_on else "scale to zero"
    text = f"{fleet(max(replicas, 1), n, hw.id)} {label}, {mode} (~{human_count(cap.likely)} tok/s per replica)"
    return ServeRoute(
        kind,
        text,
        usd,
        usd_per_1m=None,
        capacity_tok_s=cap,
        gpus=n,
        replicas=replicas,
        assumptions=[
            f"vLLM-class batching, 16-bit weights, {int(Range.of(sh['concurrency']).likely)} concurrent requests, "
            f"sized for {sh['target_utilization']:.0%} average utilisation"
        ],
    )


def dedicated_route(
    label: str,
    model: ModelInfo,
    hw: Hardware,
    usd_per_gpu_hour: Range,
    tokens_per_day: float,
    always_on: bool,
    catalog: Catalog,
    context_tokens: int,
    output_share: float,
) -> ServeRoute:
    """A provider's dedicated endpoint on `hw` GPUs, billed per GPU-hour."""
    sh = catalog.prices["self_hosting"]
    return _sized(
        "hosted-dedicated",
        label,
        model,
        hw,
        usd_per_gpu_hour,
        tokens_per_day,
        always_on,
        sh,
        context_tokens,
        output_share,
    )


def rented_route(
    model: ModelInfo,
    hw: Hardware,
    tokens_per_day: float,
    always_on: bool,
    catalog: Catalog,
    context_tokens: int,
    output_share: float,
    derate: Range | None = None,
) -> ServeRoute:
    """Self-hosting on the cheapest rental of `hw` (`derate`: capacity lost to batching
    several adapters, `gateway.cost.sharing`)."""
    rent = hw.cheapest_rent()
    if rent is None:
        return ServeRoute(
            "rented", hw.id, Range.zero(), False, f"no rental price for {hw.id} in the catalog"
        )
    sh = catalog.prices["self_hosting"]
    return _sized(
        "rented",
        f"({rent.cloud})",
        model,
        hw,
        Range.of(rent.usd_per_hour),
        tokens_per_day,
        always_on,
        sh,
        context_tokens,
        output_share,
        derate,
    )


def owned_route(
    model: ModelInfo,
    hw: Hardware,
    n_devices: int,
    tokens_per_day: float,
    catalog: Catalog,
    context_tokens: int,
    output_share: float,
) -> ServeRoute:
    """Serving on a machine you already own: electricity only, if it keeps up."""
    sh = catalog.prices["self_hosting"]
    if model.n_params * 2 / GB + sh["runtime_overhead_gb"] > hw.usable_gb * max(1, n_devices):
        return ServeRoute(
            "owned",
            f"this machine ({hw.id})",
            Range.zero(),
            False,
            f"16-bit weights do not fit in {hw.usable_gb * max(1, n_devices):.0f} GB",
        )
    cap = capacity(model, hw, max(1, n_devices), sh, context_tokens, output_share)
    needed = tokens_per_day / 86_400 / sh["target_utilization"]
    if tokens_per_day > 0 and needed > cap.likely:
        return ServeRoute(
            "owned",
            f"this machine ({hw.id})",
            Range.zero(),
            False,
            f"this machine serves ~{human_count(cap.likely)} tok/s; {human_count(needed)} tok/s needed",
        )
    kwh = catalog.prices["electricity"]["usd_per_kwh"]
    cycle = catalog.calibration["owned_serving_duty_cycle"]
    duty = (
        Range(cycle["low"], cycle["likely"], cycle["high"]) if tokens_per_day > 0 else Range.zero()
    )
    usd = duty * (hw.watts * max(1, n_devices) / 1000 * HOURS_PER_MONTH * kwh)
    return ServeRoute(
        "owned",
        f"this machine ({hw.id}), electricity at ${kwh}/kWh",
        usd,
        capacity_tok_s=cap,
        gpus=max(1, n_devices),
        replicas=1,
    )


def cheapest_rented(
    model: ModelInfo,
    tokens_per_day: float,
    always_on: bool,
    catalog: Catalog,
    context_tokens: int,
    output_share: float,
    derate: Range | None = None,
) -> ServeRoute | None:
    fleet = rented_fleet(
        model, tokens_per_day, always_on, catalog, context_tokens, output_share, derate=derate
    )
    return fleet.route if fleet else None


def serving_context(max_seq_len: int, avg_tokens: float) -> int:
    """Typical request length when serving (prompt + answer), for KV-cache sizing: twice the
    training examples' average, at least 256, at most the training context."""
    return int(min(max_seq_len, max(256.0, avg_tokens * 2)))


@dataclass(frozen=True)
class RentedFleet:
    """The rented route as something to deploy: which GPU, where, how many, at what price."""

    route: ServeRoute
    hardware: Hardware
    rent: Any  # RentOffer: the cloud and $/h per GPU


def rented_fleet(
    model: ModelInfo,
    tokens_per_day: float,
    always_on: bool,
    catalog: Catalog,
    context_tokens: int,
    output_share: float,
    cloud: str | None = None,
    derate: Range | None = None,
) -> RentedFleet | None:
    """The cheapest rented fleet (the plan's rented serving route; on a tie, the one with
    more headroom), held to `cloud` when given; only GPUs SkyPilot can rent by name."""

    def key(f: RentedFleet) -> tuple[float, float]:
        cap = f.route.capacity_tok_s.likely if f.route.capacity_tok_s else 0.0
        return (f.route.usd_month.likely, -cap)

    best: RentedFleet | None = None
    for hw in catalog.hardware.values():
        if hw.vendor != "nvidia" or not hw.skypilot:
            continue
        if cloud is not None:
            hw = hw.model_copy(update={"rent": [r for r in hw.rent if r.cloud == cloud]})
        rent = hw.cheapest_rent()
        if rent is None:
            continue
        route = rented_route(
            model, hw, tokens_per_day, always_on, catalog, context_tokens, output_share, derate
        )
        if route.feasible and (best is None or key(RentedFleet(route, hw, rent)) < key(best)):
            best = RentedFleet(route, hw, rent)
    return best


def breakeven_tokens_per_day(
    usd_per_1m: float,
    model: ModelInfo,
    catalog: Catalog,
    context_tokens: int,
    output_share: float,
    *,
    adapters: int = 1,
    loss: float = 0.0,
) -> tuple[float | None, str]:
    """Daily volume above which renting GPUs (always on) beats paying `usd_per_1m` per token:
    per fine-tune when `adapters` share the fleet, whose capacity then loses `loss` to
    batching them (`gateway.cost.sharing`)."""
    if usd_per_1m <= 0:
        return None, "hosted serving is free at the catalog price"
    sh = catalog.prices["self_hosting"]
    best: tuple[float, str] | None = None
    for hw in catalog.hardware.values():
        rent = hw.cheapest_rent()
        n = gpus_to_fit(model, hw, sh) if hw.vendor == "nvidia" else None
        if rent is None or n is None:
            continue
        per_day_capacity = (
            capacity(model, hw, n, sh, context_tokens, output_share).likely
            * (1 - loss)
            * 86_400
            * sh["target_utilization"]
        )
        replica_month = rent.usd_per_hour * n * HOURS_PER_MONTH
        for replicas in range(1, 4096):
            tokens = replicas * replica_month / (adapters * usd_per_1m / 1e6 * DAYS_PER_MONTH)
            if tokens * adapters <= replicas * per_day_capacity:
                if best is None or tokens < best[0]:
                    best = (tokens, f"{fleet(replicas, n, hw.id)} ({rent.cloud})")
                break
    if best is None:
        return None, "no rented GPU in the catalog can serve this model"
    return best
