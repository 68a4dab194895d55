"""The router: ask every provider for offers, apply the constraints, rank by whole-life cost.

Ranking is by total cost over the serving horizon (training + serving), ties broken by training
time. Every infeasible offer keeps its reasons; `Plan.explain()` says why the winner won and
why each runner-up lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from gateway.catalog import Catalog, load_catalog
from gateway.catalog.hardware import Machine, detect, what_if
from gateway.catalog.schema import ModelInfo
from gateway.cost.offer import Offer, PlanContext
from gateway.cost.serving import breakeven_tokens_per_day
from gateway.cost.sharing import Sharing, sharing
from gateway.data.report import DatasetReport, quick_report
from gateway.errors import PlanError
from gateway.spec import JobSpec, ResolvedSpec, objectives
from gateway.spec.presets import resolve
from gateway.util.units import Range, human_count, human_hours, human_usd


@dataclass
class Plan:
    spec: JobSpec  # resolved
    origin: dict[str, str]
    model: ModelInfo
    report: DatasetReport
    machine: Machine
    offers: list[Offer]  # feasible first, cheapest first; then infeasible
    breakeven_tokens_per_day: float | None = None
    breakeven_note: str = ""
    warnings: list[str] = field(default_factory=list)
    export_check: Any = None  # exporters.check.ExportCheck, when the job says where it goes
    sharing: Sharing | None = None  # served alone vs on one fleet with other fine-tunes of its base
    # no fine-tune: the base with each of the job's eval baselines (`gateway.facade.prompt_only`)
    prompt_only: list[Any] = field(default_factory=list)

    @property
    def choice(self) -> Offer | None:
        return self.offers[0] if self.offers and self.offers[0].feasible else None

    @property
    def feasible(self) -> list[Offer]:
        return [o for o in self.offers if o.feasible]

    def tokens(self) -> dict[str, Any]:
        epochs = self.spec.training.epochs
        return {
            **self.report.to_json(),
            "epochs": epochs,
            "trained_tokens": round(self.report.total_tokens * epochs),
        }

    def explain(self) -> str:
        """Why the winner won and why each runner-up lost, in plain sentences."""
        choice = self.choice
        if choice is None:
            lines = ["No offer is feasible:"]
            lines += [f"  - {o.label}: {o.reason}" for o in self.offers if o.kind != "rented"]
            rented = [o for o in self.offers if o.kind == "rented"]
            if rented:
                lines.append(
                    f"  - {len(rented)} rented-GPU offers, e.g. {rented[0].label}: {rented[0].reason}"
                )
            return "\n".join(lines)
        days = self.spec.serving.horizon_days
        lines = [
            f"{choice.label} wins: lowest total over {days:g} days, {human_usd(choice.total_usd.likely)} "
            f"({human_usd(choice.train_usd.likely)} training in ~{human_hours(choice.train_hours.likely)}"
            f" + {human_usd(choice.serve_usd_month.likely)}/month serving: {choice.serve})."
        ]
        seen: set[str] = {choice.provider}
        for offer in self.feasible[1:]:
            if offer.provider in seen:
                continue
            seen.add(offer.provider)
            extra = offer.total_usd.likely - choice.total_usd.likely
            if not offer.launchable and choice.launchable:
                why = (
                    f"{human_usd(-extra)} less, but {offer.needs[0]}"
                    if extra < 0
                    else (offer.needs[0])
                )
            elif abs(extra) < 0.005:
                why = f"same cost but slower (~{human_hours(offer.train_hours.likely)})"
            else:
                why = f"{human_usd(extra)} more"
            lines.append(f"  - {offer.label}: {why} ({human_usd(offer.total_usd.likely)} total)")
        for offer in self.offers:
            if not offer.feasible and offer.provider not in seen:
                seen.add(offer.provider)
                lines.append(f"  - {offer.label}: not feasible: {offer.reason}")
        if self.prompt_only:
            from gateway.facade.prompt_only import explain

            lines += explain(self.prompt_only, choice.total_usd.likely, days)
        if self.breakeven_tokens_per_day:
            lines.append(
                f"Break-even serving volume: ~{human_count(self.breakeven_tokens_per_day)} tokens/day "
                f"({self.breakeven_note}); above it self-hosting on rented GPUs is cheaper than per-token hosting."
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "choice": self.choice.to_json() if self.choice else None,
            "offers": [o.to_json() for o in self.offers],
            "breakeven_tokens_per_day": round(self.breakeven_tokens_per_day)
            if self.breakeven_tokens_per_day
            else None,
            "breakeven_note": self.breakeven_note,
            "tokens": self.tokens(),
            "model": self.model.id,
            "machine": self.machine.to_json(),
            "spec": self.spec.to_yaml_dict(),
            "spec_origin": self.origin,
            "explain": self.explain(),
            "warnings": self.warnings,
            "sharing": self.sharing.to_json() if self.sharing else None,
            "prompt_only": [r.to_json() for r in self.prompt_only],
            **({"export_check": self.export_check.to_json()} if self.export_check else {}),
        }


def _apply_constraints(offer: Offer, spec: JobSpec) -> None:
    c = spec.constraints
    if c.providers is not None and offer.provider not in c.providers:
        offer.refuse(f"not in the providers allow-list ({', '.join(c.providers)})")
    if c.local_only and offer.kind != "local":
        where = (
            "rented GPUs run elsewhere"
            if offer.kind == "rented"
            else "data would leave this machine"
        )
        offer.refuse(f"local_only: {where}")
    if c.max_usd is not None and offer.train_usd.likely > c.max_usd:
        offer.refuse(
            f"training costs ~{human_usd(offer.train_usd.likely)}, over max_usd {human_usd(c.max_usd)}"
        )
    if c.deadline_hours is not None and offer.train_hours.likely > c.deadline_hours:
        offer.refuse(
            f"takes ~{human_hours(offer.train_hours.likely)}, past the {c.deadline_hours:g} h deadline"
        )


def make_report(
    spec: JobSpec, examples: int | None = None, avg_tokens: float | None = None
) -> DatasetReport:
    """Token statistics from numbers when given, else from the job's training file."""
    if examples is not None or avg_tokens is not None:
        if not examples or not avg_tokens:
            raise PlanError("give both --examples and --avg-tokens (or a job file with `train:`)")
        return DatasetReport(examples=examples, avg_tokens=float(avg_tokens), source="given")
    if spec.train is None:
        raise PlanError(
            "no data to size the job",
            fix="set `train:` in the job file, or pass --examples N --avg-tokens T",
        )
    return quick_report(spec.train, spec.validation)


def _unpriced(planner: Any, spec: ResolvedSpec, reason: str) -> Offer:
    zero = Range.zero()
    offer = Offer(planner.name, planner.kind, None, zero, zero, zero, spec.serving.horizon_days)
    return offer.refuse(reason)


def plan(
    spec: JobSpec,
    *,
    report: DatasetReport | None = None,
    examples: int | None = None,
    avg_tokens: float | None = None,
    hardware: str | None = None,
    catalog: Catalog | None = None,
    machine: Machine | None = None,
    env: dict[str, str] | None = None,
    today: date | None = None,
    peers: list[float] | None = None,
    peers_source: str = "stated",
) -> Plan:
    """Price the job on every backend and pick the cheapest feasible one over the horizon.
    `today` (default: `TUNEGATE_TODAY`, else the date) decides which provider cutoffs apply.
    `peers`: the daily volumes of the other fine-tunes of this base that would share its
    serving fleet (default: `serving.shared_with` of them at this job's volume)."""
    from gateway.cost import cutoffs
    from providers import all_planners  # providers depend on gateway, not the other way round

    catalog = catalog or load_catalog()
    model = catalog.model(spec.base_model)
    report = report or make_report(spec, examples, avg_tokens)
    resolved, origin = resolve(
        spec,
        examples=report.examples,
        p95_tokens=report.p95_tokens,
        avg_tokens=report.avg_tokens,
        model=model,
    )
    if machine is None:
        machine = what_if(catalog, hardware) if hardware else detect(catalog)
    ctx = PlanContext(
        catalog, resolved, model, report, machine, dict(os.environ) if env is None else env, origin
    )
    offers: list[Offer] = []
    for planner in all_planners():
        why = objectives.refusal(planner.name, resolved.objective, catalog)
        if why is not None:  # the backend does not run this objective: nothing to price
            offers.append(_unpriced(planner, resolved, why))
            continue
        for offer in planner.offers(ctx):
            _apply_constraints(offer, resolved)
            offers.append(offer)
    on = today or cutoffs.today(env)

    def alternative(base: str) -> Offer | None:
        other = plan(
            spec.model_copy(update={"base_model": base}),
            report=report,
            catalog=catalog,
            machine=machine,
            env=env,
            today=on,
        )
        return next((o for o in other.offers if o.feasible), None)

    cutoffs.apply(offers, model, catalog, on, resolved.serving.horizon_days, alternative)
    # an offer tunegate cannot start from here never wins over one it can: it stays in the
    # table, priced, with what it would take
    offers.sort(
        key=lambda o: (not o.feasible, not o.launchable, o.total_usd.likely, o.train_hours.likely)
    )
    warnings = list(machine.notes)
    if report.approximate:
        warnings.append(
            "token counts are approximate (characters / 4); `tunegate data check` counts with the real tokenizer"
        )
    per_token = [
        o.serve_usd_per_1m
        for o in offers
        if o.feasible and o.kind == "hosted" and o.serve_usd_per_1m
    ]
    if not per_token:
        per_token = [
            o.serve_usd_per_1m for o in offers if o.kind == "hosted" and o.serve_usd_per_1m
        ]
    breakeven, note = None, "no per-token hosted serving for this model"
    if per_token and not model.closed:
        breakeven, note = breakeven_tokens_per_day(
            min(per_token), model, catalog, ctx.context_tokens, resolved.serving.output_share
        )
    elif model.closed:
        note = "closed model: it can only be served by its provider"
    export = None
    if spec.export is not None:  # the job says where it goes: check that path now (no ML imports)
        from exporters.check import check_export

        export = check_export(spec, deep=False)
    result = Plan(
        resolved, origin, model, report, machine, offers, breakeven, note, warnings, export
    )
    serving = resolved.serving
    if serving.tokens_per_day > 0 and not model.closed:
        others = (
            peers if peers is not None else [float(serving.tokens_per_day)] * serving.shared_with
        )
        result.sharing = sharing(
            model,
            float(serving.tokens_per_day),
            others,
            catalog,
            always_on=serving.always_on,
            context_tokens=ctx.context_tokens,
            output_share=serving.output_share,
            hosted_usd_per_1m=min(per_token) if per_token else None,
            volume_source=peers_source,
        )
    result.warnings += _closing_routes(catalog, on, serving.horizon_days)
    if resolved.eval is not None and resolved.eval.baselines:
        from gateway.facade.prompt_only import prompt_routes

        def replan(at: JobSpec) -> list[Offer]:
            return plan(
                at, report=report, catalog=catalog, machine=machine, env=env, today=on
            ).offers

        best = result.choice.total_usd.likely if result.choice else None
        result.prompt_only = prompt_routes(spec, report, replan, best)
    return result


def _closing_routes(catalog: Catalog, on: date, horizon_days: float) -> list[str]:
    """Serving routes a provider has announced it will close within the horizon."""
    out = []
    for provider, prices in catalog.prices["serving"].items():
        for end in prices.get("ends") or []:
            days = (date.fromisoformat(end["date"]) - on).days
            if 0 <= days <= horizon_days:
                out.append(
                    f"{provider}: {end['what']} close on {end['date']} ({days} days; {end['source']})"
                )
    return out


def launcher_preview(result: Plan) -> dict[str, Any] | None:
    """What launches the job when not tunegate's own worker: the Axolotl config of the
    several-node route, as the rented runner writes it (`plan --show-spec`)."""
    from providers.runners import all_runners

    spec = result.spec.model_dump(mode="json")
    return next((p for r in all_runners() if (p := r.preview(spec)) is not None), None)
