"""A prompt against a fine-tune, in money: what each arm costs to serve the same requests,
and when the fine-tune's one-off training is paid back by its shorter prompts.

The volume is requests: the job's tokens/day is the fine-tune's traffic, so requests/day is
that over the fine-tune's measured tokens per request, and an arm with a longer prompt pays
for its extra tokens on every request. Payback is at the stated volume; the break-even volume is
searched, since an always-on fleet or this machine costs the same until it no longer keeps up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from gateway.util.units import DAYS_PER_MONTH


@dataclass(frozen=True)
class ArmTokens:
    """What one request costs an arm in tokens, on average (measured by the engine)."""

    name: str  # tuned | base | few-shot:5 | system:FILE
    label: str
    prompt: float
    completion: float

    @property
    def per_request(self) -> float:
        return self.prompt + self.completion

    @property
    def output_share(self) -> float:
        return self.completion / self.per_request if self.per_request else 0.0

    def tokens_per_day(self, requests_per_day: float) -> float:
        return self.per_request * requests_per_day


def requests_per_day(tuned: ArmTokens, tokens_per_day: float) -> float:
    """The requests a day that `tokens_per_day` of the fine-tune's traffic is."""
    return tokens_per_day / tuned.per_request if tuned.per_request else 0.0


@dataclass(frozen=True)
class Payback:
    """The fine-tune against one prompt arm on their cheapest serving routes."""

    arm: str
    # the arm's serving minus the fine-tune's at the stated volume (None: the arm has no route)
    saving_usd_month: float | None
    payback_days: float | None  # training paid back by the saving; None: it never is
    breakeven_requests_per_day: float | None  # above it the fine-tune is cheaper over the horizon

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def payback_days(saving_usd_month: float, training_usd: float) -> float | None:
    """Days of serving the shorter prompt until the training is paid for (None: never)."""
    if saving_usd_month <= 0:
        return None
    return training_usd / (saving_usd_month / DAYS_PER_MONTH)


def breakeven_requests_per_day(
    extra_usd_month: Callable[[float], float | None],
    training_usd: float,
    horizon_days: float,
    *,
    low: float = 1.0,
    high: float = 1e9,
    steps: int = 12,
) -> float | None:
    """The fewest requests a day at which serving the prompt arm costs more over the horizon
    than the fine-tune's training: `extra_usd_month(r)` is the arm's serving minus the
    fine-tune's at r requests/day (None where a route does not keep up). Per-token prices
    make it a line, an always-on fleet a staircase, so the volume is searched on a doubling
    grid and the first crossing narrowed by bisection; None when it never crosses below
    `high`."""

    def pays(r: float) -> bool:
        extra = extra_usd_month(r)
        return (
            extra is not None
            and extra > 0
            and extra * horizon_days / DAYS_PER_MONTH >= training_usd
        )

    below, r = None, low
    while r <= high:
        if pays(r):
            break
        below, r = r, r * 2
    else:
        return None
    if below is None:
        return r
    for _ in range(steps):
        mid = (below + r) / 2
        below, r = (below, mid) if pays(mid) else (mid, r)
    return r
