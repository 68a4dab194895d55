"""What one deployment costs to serve, from the catalog: per token for serverless hosted
routes, per hour for everything that bills whether or not it answers (dedicated endpoints,
Bedrock imports, this machine's electricity). An hourly route is never shown as $0 per request:
reports amortize its hours over the tokens measured (`gateway.serve.usage`).

Each deploy target prices its own deployments (`Deployer.price`, like LiteLLM's per-provider
cost calculators) from the building blocks here and its own rows of `prices.yaml`; nothing
here knows a target by name. `exporters.deploy.price_of` asks the right one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from gateway.catalog import Catalog
from gateway.errors import TunegateError
from gateway.journal import JobRecord, Journal
from gateway.journal.deployments import Deployment
from gateway.util.units import Range


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
        row = journal.artifact(dep.artifact_id)
        job_id = row["job_id"] if row else None
    if not job_id:
        return None
    try:
        return journal.get(str(job_id))
    except TunegateError:
        return None


def base_of(dep: Deployment, journal: Journal) -> str | None:
    """The base model a deployment derives from, as the journal knows it: its job's, or what
    the deploy recorded (`exporters.deploy.price_of` also reads an export's own record)."""
    job = job_of(dep, journal)
    if job is not None:
        return job.base_model
    base = (dep.meta or {}).get("base")
    return str(base) if base else None


def _likely(value: Any) -> float:
    return Range.of(value).likely if isinstance(value, dict) else float(value)


def dedicated_price(label: str, row: dict[str, Any], dep: Deployment) -> Price:
    """A dedicated endpoint billed per GPU-hour whether or not it answers (the catalog's
    `dedicated` row of a hosted provider's serving prices)."""
    ded = row["dedicated"]
    gpus = int((dep.meta or {}).get("gpus") or 1)
    return Price(
        "hourly",
        f"{label} dedicated, {gpus} x {ded['gpu']}",
        usd_per_hour=gpus * _likely(ded["usd_per_gpu_hour"]),
        source=row["source"],
    )


def per_token_price(label: str, usd_in: float, usd_out: float, source: str) -> Price:
    """A serverless route billed per token ($ per 1M input and output tokens)."""
    return Price("per_token", label, float(usd_in), float(usd_out), source=source)


def hosted_id(catalog: Catalog, base: str | None, provider: str) -> str | None:
    """The id `provider` knows `base` by (models.yaml `hosted:`), if it hosts it."""
    if not base:
        return None
    try:
        hosted = catalog.model(base).hosted.get(provider)
    except TunegateError:
        return None
    return hosted.id if hosted else None


def band_price(row: dict[str, Any], key: str, size_b: float) -> float | None:
    """$ per 1M tokens from a table of parameter-count bands (`max_params_b`, `usd`)."""
    band = next((b for b in row.get(key) or [] if size_b <= b["max_params_b"]), None)
    return float(band["usd"]) if band else None


_MACHINES: dict[int, Any] = {}


def _machine(catalog: Catalog) -> Any:
    """This machine, detected once per catalog (detection runs nvidia-smi and the like)."""
    from gateway.catalog.hardware import detect

    if id(catalog) not in _MACHINES:
        _MACHINES[id(catalog)] = detect(catalog)
    return _MACHINES[id(catalog)]


def this_machine(catalog: Catalog) -> Price:
    """What an engine on this machine costs while it runs: its power draw at the catalog's
    electricity price (the same figures the plan's owned-machine route uses)."""
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
