"""What one deployment costs to serve, from the catalog: per token for serverless hosted
routes, per hour for everything that bills whether or not it answers (dedicated endpoints,
Bedrock imports, this machine's electricity). An hourly route is never shown as $0 per request:
reports amortize its hours over the tokens measured (`gateway.serve.usage`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from gateway.catalog import Catalog, load_catalog
from gateway.deploy_journal import Deployment
from gateway.errors import TunegateError
from gateway.journal import JobRecord, Journal
from gateway.units import Range

SELF_HOSTED = frozenset({"llamacpp", "ollama", "mlx"})


@dataclass(frozen=True)
class Price:
    kind: Literal["per_token", "hourly", "unpriced"]
    label: str
    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    usd_per_hour: float = 0.0
    source: str = ""

    def request_cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """A per-token route's cost for one request; None for hourly and unpriced routes."""
        if self.kind != "per_token":
            return None
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1e6

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def job_of(dep: Deployment, journal: Journal) -> JobRecord | None:
    """The training job behind a deployment: recorded in its meta, or its artifact's job."""
    job_id = (dep.meta or {}).get("job")
    if not job_id and dep.artifact_id:
        rows = [a for a in journal.artifacts() if a["id"] == dep.artifact_id]
        job_id = rows[0]["job_id"] if rows else None
    if not job_id:
        return None
    try:
        return journal.get(str(job_id))
    except TunegateError:
        return None


def base_of(dep: Deployment, journal: Journal) -> str | None:
    """The base model a deployment derives from: its job's, or what its export recorded."""
    job = job_of(dep, journal)
    if job is not None:
        return job.base_model
    if dep.endpoint and dep.target in SELF_HOSTED:
        path = Path(dep.endpoint)
        for record in (path.parent / "export.json", path / "export.json"):
            if record.is_file():
                try:
                    base = (json.loads(record.read_text()).get("source") or {}).get("base")
                except (OSError, ValueError):
                    base = None
                if base:
                    return str(base)
    base = (dep.meta or {}).get("base")
    return str(base) if base else None


def _likely(value: Any) -> float:
    return Range.of(value).likely if isinstance(value, dict) else float(value)


def price_of(dep: Deployment, journal: Journal, catalog: Catalog | None = None) -> Price:
    """The catalog's price for serving `dep` (never raises: an unknown is `unpriced`)."""
    catalog = catalog or load_catalog()
    serving = catalog.prices["serving"]
    if dep.target in SELF_HOSTED:
        return _this_machine(catalog)
    if dep.target == "bedrock":
        bed = serving["bedrock"]
        per_min = float(bed["custom_model_import_usd_per_cmu_minute"])
        units = int((dep.meta or {}).get("model_units") or 1)
        return Price(
            "hourly",
            f"Bedrock imported model, {units} CMU x ${per_min}/min while active",
            usd_per_hour=units * per_min * 60,
            source=bed["source"],
        )
    base = base_of(dep, journal)
    hosted = None
    if base:
        try:
            hosted = catalog.model(base).hosted.get(dep.target)
        except TunegateError:
            hosted = None
    if dep.target == "openai":
        row = serving["openai"]["models"].get(hosted.id if hosted else base)
        if row is None:
            return Price("unpriced", f"no OpenAI serving price for {base}")
        return Price(
            "per_token",
            f"OpenAI ft:{hosted.id if hosted else base}",
            input_per_1m=row["input"],
            output_per_1m=row["output"],
            source=serving["openai"]["source"],
        )
    if dep.target in ("together", "fireworks"):
        return _hosted(dep, serving[dep.target], hosted.id if hosted else None, catalog, base)
    return Price("unpriced", f"no serving price for target {dep.target}")


def _hosted(
    dep: Deployment, row: dict[str, Any], hosted_id: str | None, catalog: Catalog, base: str | None
) -> Price:
    name = dep.target.capitalize()
    dedicated = (dep.meta or {}).get("endpoint_id") or (dep.meta or {}).get("deployment")
    if dep.target == "together" and not dedicated:
        price = row["serverless_per_1m_tokens"].get(hosted_id or "")
        if price:
            usd = float(price["usd"])
            return Price("per_token", f"{name} serverless LoRA", usd, usd, source=row["source"])
    if dep.target == "fireworks" and row.get("serverless_lora") and base:
        size = catalog.model(base).size_b
        band = next(
            (b for b in row["serverless_per_1m_tokens_bands"] if size <= b["max_params_b"]), None
        )
        if band:
            usd = float(band["usd"])
            return Price("per_token", f"{name} serverless", usd, usd, source=row["source"])
    ded = row["dedicated"]
    gpus = int((dep.meta or {}).get("gpus") or 1)
    return Price(
        "hourly",
        f"{name} dedicated, {gpus} x {ded['gpu']}",
        usd_per_hour=gpus * _likely(ded["usd_per_gpu_hour"]),
        source=row["source"],
    )


_MACHINES: dict[int, Any] = {}


def _machine(catalog: Catalog) -> Any:
    """This machine, detected once per catalog (detection runs nvidia-smi and the like)."""
    from gateway.hardware import detect

    if id(catalog) not in _MACHINES:
        _MACHINES[id(catalog)] = detect(catalog)
    return _MACHINES[id(catalog)]


def _this_machine(catalog: Catalog) -> Price:
    machine = _machine(catalog)
    hw = catalog.hardware.get(machine.hardware_id)
    if hw is None:
        return Price("unpriced", f"no power figure for {machine.hardware_id}")
    kwh = float(catalog.prices["electricity"]["usd_per_kwh"])
    devices = max(1, machine.gpus)
    return Price(
        "hourly",
        f"this machine ({hw.id}), {hw.watts * devices:.0f} W at ${kwh}/kWh",
        usd_per_hour=hw.watts * devices / 1000 * kwh,
        source=catalog.prices["electricity"]["source"],
    )
