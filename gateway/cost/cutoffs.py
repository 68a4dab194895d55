"""Provider cutoffs as data (`cutoffs:` in rules.yaml): past a provider's last day for new jobs,
or a base model's retirement, its offers are refused with the date and the cheapest open
alternative, planned here. A retirement inside the serving horizon is a note on the offer.

`TUNEGATE_TODAY=YYYY-MM-DD` freezes the date (tests, and asking "what changes next month?").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, timedelta

from gateway.catalog import Catalog
from gateway.catalog.schema import ModelInfo
from gateway.cost.offer import Offer
from gateway.errors import SpecError
from gateway.util.units import human_usd


def today(env: dict[str, str] | None = None) -> date:
    value = (env if env is not None else os.environ).get("TUNEGATE_TODAY")
    if not value:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SpecError(
            f"TUNEGATE_TODAY={value!r} is not a date", fix="use YYYY-MM-DD, or unset it"
        ) from None


def _day(text: str) -> date:
    return date.fromisoformat(text)


def apply(
    offers: list[Offer],
    model: ModelInfo,
    catalog: Catalog,
    on: date,
    horizon_days: float,
    alternative: Callable[[str], Offer | None],
) -> None:
    """Refuse (or annotate) the offers of providers with a cutoff; `alternative(base)` plans
    the job on another base and returns its best feasible offer."""
    for offer in offers:
        cutoff = catalog.rules.cutoffs.get(offer.provider)
        if cutoff is None:
            continue
        name = offer.provider.capitalize() if offer.provider != "openai" else "OpenAI"
        hosted = model.hosted.get(offer.provider)
        retires = cutoff.retires.get(hosted.id) if hosted else None
        why = None
        if cutoff.no_new_jobs_after and on > _day(cutoff.no_new_jobs_after):
            first = _day(cutoff.no_new_jobs_after) + timedelta(days=1)
            why = f"{name} takes no new fine-tuning jobs from {first} ({cutoff.source})"
        elif retires and on > _day(retires):
            why = f"fine-tunes of {hosted.id} stopped answering after {retires} ({cutoff.retires_source})"
        elif retires and on + timedelta(days=horizon_days) > _day(retires):
            offer.notes.append(
                f"fine-tunes of {hosted.id} stop answering after {retires}, inside the "
                f"{horizon_days:g}-day serving horizon ({cutoff.retires_source})"
            )
        if why is None:
            continue
        best = _cheapest(cutoff.alternatives.get(model.id, []), alternative)
        if best is not None:
            base, alt = best
            why += (
                f"; the cheapest open alternative: {base} on {alt.label}, "
                f"{human_usd(alt.total_usd.likely)} (`tunegate plan --base {base}`)"
            )
        offer.refuse(why)


def _cheapest(
    bases: list[str], alternative: Callable[[str], Offer | None]
) -> tuple[str, Offer] | None:
    found = [(b, o) for b in bases if (o := alternative(b)) is not None]
    return min(found, key=lambda bo: bo[1].total_usd.likely, default=None)
