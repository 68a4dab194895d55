"""Cost beside quality: each arm of a task eval (the fine-tune, the bare base, each prompt
baseline) priced on every serving route the plan considers, at the job's volume.

The volume is the job's measured traffic when its deployments have some, else the stated
`serving.tokens_per_day` (or `--serve`). The same requests are priced for every arm: an arm's
tokens per day is requests per day times its measured tokens per request, so a 3,000-token
prompt pays for its 3,000 tokens on every request. Each arm is planned again at its own volume
and output share (`gateway.facade.plan.plan`), so a route that no longer keeps up is priced as
the plan would price it. A prompt arm is priced on the fine-tune's routes: where a provider
serves a bare base per token but a fine-tune only on a dedicated endpoint, its figure for the
prompt is high. Payback and break-even: `gateway.cost.prompting`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.catalog import Catalog, load_catalog
from gateway.cost.prompting import (
    ArmTokens,
    Payback,
    breakeven_requests_per_day,
    payback_days,
    requests_per_day,
)
from gateway.data.report import DatasetReport
from gateway.evaluate.generate import Target
from gateway.spec import JobSpec
from gateway.util.units import human_count, human_usd


@dataclass(frozen=True)
class Pricing:
    """What the arms are priced against: the job (or base) and volume, and training's cost."""

    spec: JobSpec
    tokens_per_day: float
    volume_source: str  # stated | measured | --serve
    training_usd: float | None
    training_source: str


def _arms(report: Any) -> list[ArmTokens] | None:
    """Every arm's tokens per request; None unless the engine measured them all."""
    out = []
    for name, label in [("tuned", "fine-tune"), ("base", "base")] + [
        (a.name, a.label) for a in report.arms
    ]:
        u = report.usage.get(name)
        if u is None or u.prompt is None or u.completion is None:
            return None
        out.append(ArmTokens(name, label, u.prompt, u.completion))
    return out


class _Priced:
    """Each arm planned at a volume (`gateway.facade.plan.plan`, a few ms each), memoized:
    the first feasible offer of each backend, in the plan's order."""

    def __init__(self, spec: JobSpec, catalog: Catalog):
        self.spec, self.catalog = spec, catalog
        self._seen: dict[tuple[str, float], dict[str, Any]] = {}

    def routes(self, arm: ArmTokens, requests: float) -> dict[str, Any]:
        key = (arm.name, round(requests, 3))
        if key not in self._seen:
            self._seen[key] = self._plan(arm, requests)
        return self._seen[key]

    def cheapest(self, arm: ArmTokens, requests: float) -> Any:
        offers = list(self.routes(arm, requests).values())
        return min(offers, key=lambda o: o.serve_usd_month.likely) if offers else None

    def _plan(self, arm: ArmTokens, requests: float) -> dict[str, Any]:
        from gateway.facade.plan import plan

        spec = self.spec
        serving = spec.serving.model_copy(
            update={
                "tokens_per_day": max(1, round(arm.tokens_per_day(requests))),
                "output_share": max(0.01, min(0.99, arm.output_share)),
            }
        )
        update: dict[str, Any] = {"serving": serving}
        if spec.eval is not None:  # no prompt rows inside a prompt arm's own plan
            update["eval"] = spec.eval.model_copy(update={"baselines": []})
        sized = DatasetReport(examples=1000, avg_tokens=max(1.0, arm.per_request), source="eval")
        out: dict[str, Any] = {}
        for offer in plan(
            spec.model_copy(update=update), report=sized, catalog=self.catalog
        ).offers:
            if offer.feasible and offer.provider not in out:
                out[offer.provider] = offer
        return out


def price_arms(report: Any, pricing: Pricing, catalog: Catalog | None = None) -> dict[str, Any]:
    """The report's `cost`: each arm per route and at its cheapest, the fine-tune's payback
    against each prompt arm, and the plain sentences the report leads with."""
    arms = _arms(report)
    if arms is None:
        return {"sentences": ["tokens per request were not measured by this backend: not priced"]}
    if pricing.tokens_per_day <= 0:
        return {
            "sentences": [
                "no serving volume: set serving.tokens_per_day in the job file (or --serve) "
                "to price each arm"
            ]
        }
    priced = _Priced(pricing.spec, catalog or load_catalog())
    requests = requests_per_day(arms[0], pricing.tokens_per_day)
    routes = [
        {
            "route": f"{provider}: {offer.serve}",
            "usd_month": {
                a.name: (o.serve_usd_month.likely if (o := priced.routes(a, requests).get(provider)) else None)
                for a in arms
            },
        }
        for provider, offer in priced.routes(arms[0], requests).items()
    ]  # fmt: skip
    cheapest: dict[str, Any] = {}
    for a in arms:
        best = priced.cheapest(a, requests)
        cheapest[a.name] = {
            "label": a.label,
            "prompt_tokens": a.prompt,
            "completion_tokens": a.completion,
            "tokens_per_day": round(a.tokens_per_day(requests)),
            "usd_month": best.serve_usd_month.likely if best else None,
            "route": f"{best.provider}: {best.serve}" if best else None,
        }
    paybacks = [_payback(priced, arms[0], a, requests, pricing) for a in arms[2:]]
    out = {
        "tokens_per_day": pricing.tokens_per_day,
        "volume_source": pricing.volume_source,
        "requests_per_day": requests,
        "horizon_days": pricing.spec.serving.horizon_days,
        "training_usd": pricing.training_usd,
        "training_source": pricing.training_source,
        "arms": cheapest,
        "routes": routes,
        "payback": [p.to_json() for p in paybacks if p is not None],
    }
    out["sentences"] = sentences(report, out, [p for p in paybacks if p is not None])
    return out


def _payback(
    priced: _Priced, tuned: ArmTokens, arm: ArmTokens, requests: float, pricing: Pricing
) -> Payback | None:
    """The fine-tune against `arm`, each on its cheapest route: the saving at the stated
    volume, its payback, and the volume above which training pays for itself."""

    def extra(r: float) -> float | None:
        a, t = priced.cheapest(arm, r), priced.cheapest(tuned, r)
        if t is None:
            return None
        if a is None:  # no route keeps up with the prompt: the fine-tune is the only one
            return float("inf")
        return a.serve_usd_month.likely - t.serve_usd_month.likely

    saving = extra(requests)
    if saving is None:
        return None
    if saving == float("inf"):  # the prompt is not served at this volume on any route
        return Payback(arm.name, None, None, None)
    training = pricing.training_usd or 0.0
    horizon = pricing.spec.serving.horizon_days
    return Payback(
        arm.name,
        saving,
        payback_days(saving, training),
        breakeven_requests_per_day(extra, training, horizon),
    )


def sentences(report: Any, cost: dict[str, Any], paybacks: list[Payback]) -> list[str]:
    """The verdict on quality and on money, one plain sentence per prompt arm."""
    by_arm = {p.arm: p for p in paybacks}
    return [_sentence(arm, by_arm.get(arm.name), cost) for arm in report.arms]


def _sentence(arm: Any, p: Payback | None, cost: dict[str, Any]) -> str:
    s = arm.stats
    ci = f"95% CI [{s.ci_low:+.1f}, {s.ci_high:+.1f}]"
    quality = {
        "fine-tune wins": f"The fine-tune beats {arm.label} by {s.delta:+.1f} points ({ci})",
        "on par": f"The fine-tune is on par with {arm.label} ({s.delta:+.1f} points, {ci})",
        "prompt wins": f"{arm.label} beats the fine-tune by {-s.delta:.1f} points ({ci})",
    }.get(arm.verdict, f"The fine-tune against {arm.label} is inconclusive ({s.delta:+.1f} "
                       f"points, {ci}: more examples narrow it)")  # fmt: skip
    tuned, mine = cost["arms"]["tuned"], cost["arms"].get(arm.name) or {}
    shorter = (mine.get("prompt_tokens") or 0) - (tuned.get("prompt_tokens") or 0)
    tokens = (
        f", with {shorter:,.0f} fewer prompt tokens a request ({tuned['prompt_tokens']:,.0f} vs "
        f"{mine['prompt_tokens']:,.0f})"
        if shorter >= 1
        else ""
    )
    volume = f"{human_count(cost['tokens_per_day'])} tokens/day ({cost['volume_source']})"
    if p is None:
        return f"{quality}{tokens}; serving was not priced."
    if p.saving_usd_month is None:
        return f"{quality}{tokens}; no route the plan considers serves the prompt at {volume}."
    if abs(p.saving_usd_month) < 0.005:
        money = f"costs the same to serve at {volume} on {tuned['route']}"
    else:
        more = "less" if p.saving_usd_month > 0 else "more"
        money = f"costs {human_usd(abs(p.saving_usd_month))}/month {more} to serve at {volume}"
    return f"{quality}{tokens}, and {money}{_payback_text(p, cost)}."


def _payback_text(p: Payback, cost: dict[str, Any]) -> str:
    training = cost.get("training_usd")
    if training is None:
        return ""
    text = ""
    if p.payback_days is not None:
        days = p.payback_days
        when = f"{days * 24:.0f} hours" if days < 1 else f"{days:,.0f} days"
        text = f"; it pays for its training ({human_usd(training)}) after {when}"
    if p.breakeven_requests_per_day is not None:
        text += (
            f"; over {cost['horizon_days']:g} days the fine-tune, its training ({human_usd(training)}) "
            "included, is the "
            f"cheaper choice from ~{human_count(p.breakeven_requests_per_day)} requests/day "
            f"(now {human_count(cost['requests_per_day'])})"
        )
    elif p.payback_days is None:
        text = f"; its training ({human_usd(training)}) is not paid back by serving at any volume"
    return text


def pricing_for_job(job_id: str, journal_path: Any = None) -> Pricing:
    """A journaled job's volume (measured by its deployments, else stated) and what its
    training cost (billed, else the plan's estimate at launch)."""
    from gateway.facade.advice import spec_at, volume_for_job
    from gateway.journal import Journal

    with Journal(journal_path) as journal:
        rec = journal.get(job_id)
    volume = volume_for_job(rec.id, journal_path)
    spec = spec_at(rec, volume)
    billed = (rec.actual or {}).get("usd")
    estimated = ((rec.estimate or {}).get("train_usd") or {}).get("likely")
    # a local job's bill is 0 (no provider charges it); its electricity is the estimate
    training, source = (
        (float(billed), "billed")
        if isinstance(billed, int | float) and billed > 0
        else (float(estimated), "estimated at launch")
        if isinstance(estimated, int | float)
        else (None, "unknown")
    )
    return Pricing(
        spec,
        float(spec.serving.tokens_per_day),
        "measured" if volume is not None else "stated",
        training,
        source,
    )


def pricing_for_base(base_model: str, serve: str, train: Any = None) -> Pricing:
    """A model evaluated outside a job: its base and `--serve` volume; training is what the
    plan estimates for the training file, when one is given."""
    spec = JobSpec.from_options(base=base_model, serve=serve)
    if train is not None:
        spec = spec.model_copy(update={"train": Path(train)})
    training, source = None, "unknown"
    if train is not None:
        from gateway.facade.plan import plan

        choice = plan(spec).choice
        if choice is not None:
            training, source = choice.train_usd.likely, f"planned ({choice.label})"
    return Pricing(spec, float(spec.serving.tokens_per_day), "--serve", training, source)


def pricer(
    tuned: Target, *, serve: str | None = None, base_model: str | None = None, train: Any = None
) -> tuple[Callable[[Any], dict[str, Any]], str | None]:
    """How a report's arms are priced (`price_arms`), and the catalog base they
    are priced for; what cannot be priced says why on the report and fails nothing."""
    from gateway.errors import TunegateError

    base = base_model
    pricing: Any = None
    try:
        if tuned.job_id and serve is None and base_model is None:
            pricing = pricing_for_job(tuned.job_id)
        else:
            base = base or (str(tuned.path) if tuned.kind == "hf" and tuned.path else None)
            if base is None:
                raise TunegateError(f"{tuned.ref}: name its base model with --base to price it")
            pricing = pricing_for_base(base, serve or "0", train)
        base = str(pricing.spec.base_model)
    except TunegateError as exc:
        why = str(exc)

        def unpriced(report: Any) -> dict[str, Any]:
            return {"sentences": [f"not priced: {why}"]}

        return unpriced, base

    def price(report: Any) -> dict[str, Any]:
        try:
            return price_arms(report, pricing)
        except TunegateError as exc:
            return {"sentences": [f"not priced: {exc}"]}

    return price, base
