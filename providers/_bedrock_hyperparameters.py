"""Bedrock's hyperparameters per base model, mapped from the job and checked against the limits
the catalog records (rules.yaml: hyperparameters.bedrock)."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.catalog import Catalog
from gateway.spec import ResolvedSpec


def hyperparameters(
    spec: ResolvedSpec, origin: Mapping[str, str], catalog: Catalog, base: str
) -> tuple[dict[str, str], list[str], list[str]]:
    """(Bedrock hyperParameters, refusals, notes) for a base model, from the catalog's limits.

    A value the user set outside Bedrock's range is refused; a preset value is clamped."""
    table = catalog.rules.hyperparameters.get("bedrock", {})
    profile = next((p for p in table.values() if base in p.models), None)
    if profile is None:
        return {}, [f"no Bedrock hyperparameter limits for {base} in the catalog"], []
    out: dict[str, str] = {}
    refusals: list[str] = []
    notes: list[str] = []
    for name, rule in profile.params.items():
        section, key = rule.from_.split(".")
        value = getattr(getattr(spec, section), key)
        value = rule.default if value is None else value
        if rule.type == "int":
            value = round(value)
        lo, hi = rule.min, rule.max
        if not lo <= value <= hi:
            if origin.get(rule.from_) in ("job", "cli"):
                refusals.append(
                    f"Bedrock accepts {name} {lo:g}-{hi:g} for {base}; "
                    f"the job sets {rule.from_} = {value:g}"
                )
                continue
            clamped = min(max(value, lo), hi)
            notes.append(f"{rule.from_} {value:g} sent as {name} {clamped:g} (Bedrock's range)")
            value = clamped
        out[name] = str(int(value)) if rule.type == "int" else f"{value:g}"
    return out, refusals, notes
