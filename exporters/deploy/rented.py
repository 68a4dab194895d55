"""Rented GPUs through SkyServe: the plan's rented serving route, deployed.

The fleet is the plan's (`gateway.cost.serving.rented_fleet`: the cheapest GPU that keeps up
at the volume, its cloud, the replicas); the engine is vLLM with the job's LoRA adapter,
copied to each replica (`mode: COPY`, so RunPod and Vast, which cannot mount a bucket, serve
too); the service autoscales between the plan's replicas and more on QPS, spot with an
on-demand floor when asked. `providers.runners.sky_serve` holds the service and the
never-twice rule; this module is the `Deployer` seam: what the journal records, how
`tunegate serve` reaches it, and what it costs while it runs.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

from exporters.deploy.base import DeployOptions, DeploySource, Messages, Prepared, Upstream, Wants
from gateway.errors import DeployError
from gateway.journal.deployments import ChatReply, Deployment

TARGET = "rented"
ALIVE = ("READY", "NOT_READY", "STARTING", "PROVISIONING", "PENDING")  # billed or about to be


class RentedFleet:
    target = TARGET
    wants: Wants = "job"
    hosts = "hosted"
    options = frozenset({"on", "serve", "spot", "scale_to_zero"})
    resumable = True  # a pending deployment is resumed by the next deploy of its job

    def accepts(self, src: DeploySource) -> str | None:
        from providers.runners.sky_jobs import not_ready

        if src.job is None:
            return "--to rented serves a job's LoRA adapter: give a job id (`tunegate jobs`)"
        if not _has_adapter(src.job):
            return (
                f"job {src.job.id} has no LoRA adapter here or in its bucket folder: --to rented"
                " serves adapters with vLLM (a full fine-tune is not supported yet)"
            )
        blocked = not_ready()
        return f"cannot rent from here: {blocked}" if blocked else None

    def prepare(self, src: DeploySource, name: str | None, options: DeployOptions) -> Prepared:
        from providers.runners import sky_serve

        job = src.job
        assert job is not None
        fleet, volume = _fleet(job, options)
        route, hw, rent = fleet.route, fleet.hardware, fleet.rent
        same = src.peers[0] if src.peers else None  # live: changed in place, same service
        name = name or (same.name if same else (job.name or job.id).lower())
        service = (
            str(same.meta["service"]) if same else sky_serve.service_name(name, uuid.uuid4().hex)
        )
        always_on = _always_on(job) and not options.scale_to_zero
        replicas = max(1, route.replicas) if always_on else 0
        per_request = _context(job)
        cap = route.capacity_tok_s.likely if route.capacity_tok_s else 1.0
        meta: dict[str, Any] = {
            "job": job.id,
            "base": job.base_model,
            "service": service,
            "engine": "vllm",
            "lora_name": name,
            "lora_rank": int(((job.spec or {}).get("lora") or {}).get("r") or 16),
            "adapter_uri": _adapter_uri(job, service),
            "accelerator": hw.skypilot,
            "hardware": hw.id,
            "gpus": route.gpus,
            "cloud": rent.cloud,
            "min_replicas": replicas,
            "max_replicas": max(replicas + 1, math.ceil(replicas * 1.5), route.replicas),
            "target_qps": round(cap * 0.7 / per_request, 3),
            "spot": bool(options.spot),
            "ondemand_base": 1 if options.spot else 0,
            "usd_per_gpu_hour": (rent.spot_usd_per_hour if options.spot else None)
            or rent.usd_per_hour,
            "price_source": rent.source,
            "route": route.label,
            "plan_usd_month": round(route.usd_month.likely, 2),
            "tokens_per_day": volume,
        }
        meta["spec_sha"] = sky_serve.spec_sha(meta)
        return Prepared(name, meta, remote=True)

    def deploy(self, prepared: Prepared) -> dict[str, Any]:
        from providers.runners import sky_serve

        meta = prepared.meta
        _upload_adapter(meta)
        made = sky_serve.up_or_adopt(meta)
        endpoint = str(made.get("endpoint") or "")
        if endpoint and "://" not in endpoint:
            endpoint = "http://" + endpoint
        return {**made, "endpoint": endpoint or None}

    def undeploy(self, dep: Deployment) -> None:
        from providers.runners import sky_serve

        sky_serve.down(str(dep.meta["service"]))

    def upstream(self, dep: Deployment) -> Upstream:
        from providers.runners.sky_serve import engine_key

        base = str(dep.endpoint or "").rstrip("/")
        if not base:
            raise DeployError(
                f"{dep.name} has no endpoint yet", fix=f"tunegate deployments {dep.id}"
            )
        key = engine_key(str(dep.meta["service"]))
        return Upstream("http", str(dep.meta["lora_name"]), base + "/v1",
                        {"Authorization": f"Bearer {key}"})  # fmt: skip

    def chat(self, dep: Deployment, messages: Messages, max_tokens: int) -> ChatReply:
        from gateway.catalog.extras import require

        require("openai", what="chat with a rented deployment")
        import openai

        from exporters.deploy.base import completion

        up = self.upstream(dep)
        client = openai.OpenAI(base_url=up.base_url, api_key=up.headers["Authorization"][7:],
                               max_retries=2)  # fmt: skip
        return completion("rented", client, up.model, messages, max_tokens, dep.id)

    def price(self, dep: Deployment, base: str | None, catalog: Any) -> Any:
        """Hourly: the replicas SkyServe last reported alive (the plan's count until it has
        been asked) x GPUs x the offer's $/h."""
        from gateway.cost.deployments import Price

        meta = dep.meta or {}
        if not meta.get("usd_per_gpu_hour"):
            return _smallest_fleet_price(base, catalog)
        alive = meta.get("replicas_alive")
        replicas = int(meta.get("min_replicas") or 0) if alive is None else int(alive)
        gpus, usd = int(meta.get("gpus") or 1), float(meta.get("usd_per_gpu_hour") or 0)
        label = f"{replicas} x {gpus} x {meta.get('hardware')} ({meta.get('cloud')})"
        if meta.get("plan_usd_month") is not None:  # beside what the plan estimated
            label += f", plan ${float(meta['plan_usd_month']):,.0f}/month"
        return Price("hourly", label, usd_per_hour=replicas * gpus * usd,
                     source=str(meta.get("price_source") or ""))  # fmt: skip

    def scaled_to_zero_usd_month(
        self, dep: Deployment, tokens_per_day: float, output_share: float, catalog: Any
    ) -> float | None:
        """What the same fleet would cost a month if it scaled to zero between requests at
        this traffic (busy hours only); None when it already does."""
        from gateway.cost.serving import rented_route

        meta = dep.meta or {}
        hw = catalog.hardware.get(str(meta.get("hardware")))
        if not meta.get("min_replicas") or hw is None:
            return None
        hw = hw.model_copy(update={"rent": [r for r in hw.rent if r.cloud == meta.get("cloud")]})
        route = rented_route(catalog.model(str(meta["base"])), hw, tokens_per_day, False, catalog,
                             1024, output_share)  # fmt: skip
        return route.usd_month.likely if route.feasible else None

    def live_status(self, dep: Deployment) -> dict[str, Any]:
        """What SkyServe says now: the service's state and each replica's (with `alive`, the
        ones billed or about to be)."""
        from providers.runners import sky_serve

        found = sky_serve.status(str(dep.meta["service"]))
        if found is None:
            return {"service": "absent", "replicas": [], "alive": 0}
        replicas = found.get("replicas") or []
        alive = sum(1 for r in replicas if r.get("status") in ALIVE)
        return {"service": found.get("status"), "replicas": replicas, "alive": alive,
                "version": found.get("version"), "endpoint": found.get("endpoint")}  # fmt: skip


def _has_adapter(job: Any) -> bool:
    """A rented job's adapter is in its bucket folder; any other's in its local folder."""
    from gateway.journal.records import job_dir
    from providers.jobdir import JobDir

    if (job.remote or {}).get("bucket_jobdir"):
        return True
    return (JobDir(job_dir(job.id)).adapter / "adapter_config.json").is_file()


def _smallest_fleet_price(base: str | None, catalog: Any) -> Any:
    """Without the deploy's own numbers: one replica of the cheapest rented GPU that holds
    `base` (what an always-on fleet costs at the least)."""
    from gateway.cost.deployments import Price
    from gateway.cost.serving import rented_fleet

    try:
        fleet = rented_fleet(catalog.model(str(base)), 1.0, True, catalog, 1024, 0.25)
    except Exception as exc:  # an unknown base: unpriced, with the reason
        return Price("unpriced", f"no rented fleet for {base}: {exc}")
    if fleet is None:
        return Price("unpriced", f"no rented GPU in the catalog serves {base}")
    gpus = fleet.route.gpus
    return Price("hourly", f"at least 1 x {gpus} x {fleet.hardware.id} ({fleet.rent.cloud})",
                 usd_per_hour=gpus * fleet.rent.usd_per_hour, source=fleet.rent.source)  # fmt: skip


def _always_on(job: Any) -> bool:
    return bool(((job.spec or {}).get("serving") or {}).get("always_on", True))


def _context(job: Any) -> int:
    from gateway.cost.serving import serving_context

    report = (job.estimate or {}).get("report") or {}
    seq = int(((job.spec or {}).get("training") or {}).get("max_seq_len") or 2048)
    return serving_context(seq, float(report.get("avg_tokens") or 256))


def _fleet(job: Any, options: DeployOptions) -> tuple[Any, float]:
    from gateway.catalog import load_catalog
    from gateway.cost.serving import rented_fleet

    catalog = load_catalog()
    serving = (job.spec or {}).get("serving") or {}
    volume = float(options.serve or serving.get("tokens_per_day") or 0)
    if volume <= 0:
        raise DeployError(
            "a rented fleet is sized to its traffic, and this job states none",
            fix="--serve 200M/day (or serving.tokens_per_day in the job file)",
        )
    always_on = _always_on(job) and not options.scale_to_zero
    fleet = rented_fleet(
        catalog.model(job.base_model), volume, always_on, catalog, _context(job),
        float(serving.get("output_share") or 0.25), cloud=options.on,
    )  # fmt: skip
    if fleet is None:
        where = f" on {options.on}" if options.on else ""
        raise DeployError(
            f"no rented GPU{where} in the catalog can serve {job.base_model}",
            fix="tunegate plan JOB --serve VOLUME shows the serving routes and why",
        )
    return fleet, volume


def _adapter_uri(job: Any, service: str) -> str:
    """The adapter in a bucket: the rented job's own folder, else where deploy uploads it."""
    jobdir = (job.remote or {}).get("bucket_jobdir")
    if jobdir:
        return f"{str(jobdir).rstrip('/')}/adapter"
    from providers.runners.sky_jobs import _configured_bucket

    return f"{_configured_bucket().rstrip('/')}/deployments/{service}/adapter"


def _upload_adapter(meta: dict[str, Any]) -> None:
    """A job trained elsewhere: its adapter copied to the deployment's bucket folder (once)."""
    uri = str(meta["adapter_uri"])
    if f"/deployments/{meta['service']}/" not in uri:
        return  # the rented job's own folder already holds it
    from gateway.journal.records import job_dir
    from providers.jobdir import JobDir
    from providers.runners.bucket import JobBucket

    folder = JobDir(job_dir(str(meta["job"]))).adapter
    if not (folder / "adapter_config.json").is_file():
        raise DeployError(f"job {meta['job']} has no adapter at {folder}",
                          fix=f"tunegate fetch {meta['job']}")  # fmt: skip
    bucket = JobBucket(uri.rsplit("/", 2)[0], str(meta["service"]))
    if not bucket.names("adapter"):
        for path in sorted(Path(folder).iterdir()):
            if path.is_file():
                bucket.put(f"adapter/{path.name}", path)
