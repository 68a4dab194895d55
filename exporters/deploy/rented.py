"""Rented GPUs through SkyServe: the plan's rented serving route, deployed.

The fleet is the plan's (`gateway.cost.serving.rented_fleet`: the cheapest GPU that keeps up
at the volume, its cloud, the replicas). The engine is vLLM with the job's LoRA adapter,
joined with the other LoRA fine-tunes of its base in one service when their terms agree
(`exporters.deploy.rented_service`), or llama.cpp's server on the GGUF of a full fine-tune (or
of an adapter vLLM cannot apply). What the replicas need is copied to each (`mode: COPY`, so
RunPod and Vast, which cannot mount a bucket, serve too); the service autoscales between the
plan's replicas and more on QPS, spot with an on-demand floor when asked.
`providers.runners.sky_serve` holds the service and the never-twice rule; this module is the
`Deployer` seam: what the journal records, how `tunegate serve` reaches it, and what it costs
while it runs.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from exporters.deploy import rented_service as rs
from exporters.deploy.base import DeployOptions, DeploySource, Messages, Prepared, Upstream, Wants
from gateway.errors import DeployError
from gateway.journal.deployments import ChatReply, Deployment

TARGET = "rented"
ALIVE = ("READY", "NOT_READY", "STARTING", "PROVISIONING", "PENDING")  # billed or about to be
STATUS_FRESH_S = 5.0  # one SkyServe answer serves every member of a service listed at once
_ASKED: dict[str, tuple[float, Any]] = {}


class RentedFleet:
    target = TARGET
    wants: Wants = "job"
    hosts = "hosted"
    options = frozenset({"on", "serve", "spot", "scale_to_zero", "engine"})
    resumable = True  # a pending deployment is resumed by the next deploy of its job

    def wants_for(self, src: DeploySource, options: DeployOptions) -> Wants:
        """The job itself (vLLM serves its adapter), or its GGUF for llama.cpp: a full
        fine-tune, or an adapter vLLM cannot apply (DoRA, whole replaced tensors)."""
        if src.job is None or (_has_adapter(src.job) and not _vllm_problems(src.job)):
            return "job"
        return "gguf"

    def accepts(self, src: DeploySource) -> str | None:
        from providers.runners.sky_jobs import not_ready

        if src.job is None:
            return "--to rented serves a job: give a job id (`tunegate jobs`)"
        if _gguf(src) is None and not _has_adapter(src.job):
            return f"job {src.job.id} has no LoRA adapter or GGUF export to serve"
        blocked = not_ready()
        return f"cannot rent from here: {blocked}" if blocked else None

    def prepare(self, src: DeploySource, name: str | None, options: DeployOptions) -> Prepared:
        from gateway.catalog import load_catalog
        from providers.runners import sky_serve

        job, same, gguf = src.job, src.same, _gguf(src)
        assert job is not None
        name = name or (same.name if same else (job.name or job.id).lower())
        terms, catalog = _terms(job, options), load_catalog()
        me = rs.member(name, "", _rank(job), _volume(job, options), _context(job))
        service, alone = _service(src, me, terms, options, catalog, gguf is not None)
        service = service or sky_serve.service_name(name, uuid.uuid4().hex)
        me["uri"] = own_uri = (
            _model_uri(gguf, service) if gguf else _adapter_uri(job, service, name)
        )
        others = rs.members(service, src.peers)  # oldest first: a member keeps its place
        group = [me if d.id == getattr(same, "id", None) else rs.member_of(d) for d in others]
        if not any(m is me for m in group):
            group.append(me)
        engine = "llamacpp" if gguf else "vllm"
        meta = rs.fleet_meta(job.base_model, group, terms, catalog, engine=engine)
        meta.update(service=service, job=job.id, lora_name=name, lora_rank=me["rank"],
                    tokens_per_day=me["tokens_per_day"], own_context=me["context"])  # fmt: skip
        if gguf is not None:
            from importlib.metadata import version

            meta.update(
                model_uri=own_uri, gguf_path=str(gguf), llama_cpp=version("llama-cpp-python")
            )
        else:
            meta["adapter_uri"] = own_uri
        if alone:
            meta["own_service"] = alone
        meta["spec_sha"] = sky_serve.spec_sha(meta)
        return Prepared(name, meta, remote=True, artifact_id=src.artifact_id)

    def deploy(self, prepared: Prepared) -> dict[str, Any]:
        from providers.runners import sky_serve

        meta = prepared.meta
        _upload(meta)
        made = sky_serve.up_or_adopt(meta)
        _sync_members(meta, prepared.name)
        endpoint = str(made.get("endpoint") or "")
        if endpoint and "://" not in endpoint:
            endpoint = "http://" + endpoint
        return {**made, "endpoint": endpoint or None}

    def undeploy(self, dep: Deployment) -> None:
        """The last member takes the service down; any other leaves it, and the service is
        updated to the rest (their fleet re-sized to their traffic)."""
        from gateway.catalog import load_catalog
        from gateway.journal.deployments import deployments
        from providers.runners import sky_serve

        service = str(dep.meta["service"])
        rest = rs.members(service, deployments(), but=dep.id)
        if not rest:
            sky_serve.down(service)
            return
        first = rest[0].meta
        terms = {k: first.get(k) for k in ("spot", "always_on", "held_to", "output_share")}
        group = [rs.member_of(d) for d in rest]
        meta = {**first, **rs.fleet_meta(str(first["base"]), group, terms, load_catalog(),
                                          engine=str(first["engine"]))}  # fmt: skip
        meta["spec_sha"] = sky_serve.spec_sha(meta)
        sky_serve.up_or_adopt(meta)
        _sync_members(meta, "")

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
        been asked) x GPUs x the offer's $/h, times this member's share of the service."""
        from gateway.cost.deployments import Price

        meta = dep.meta or {}
        if not meta.get("usd_per_gpu_hour"):
            return _smallest_fleet_price(base, catalog)
        alive = meta.get("replicas_alive")
        replicas = int(meta.get("min_replicas") or 0) if alive is None else int(alive)
        gpus, usd = int(meta.get("gpus") or 1), float(meta.get("usd_per_gpu_hour") or 0)
        label = f"{replicas} x {gpus} x {meta.get('hardware')} ({meta.get('cloud')})"
        part = rs.share(meta)
        if part < 1:
            n = len(meta.get("members") or [])
            label = f"{part:.0%} of {label}, shared by {n} fine-tunes"
        if meta.get("plan_usd_month") is not None:  # beside what the plan estimated
            label += f", plan ${float(meta['plan_usd_month']) * part:,.0f}/month"
        return Price("hourly", label, usd_per_hour=replicas * gpus * usd * part,
                     source=str(meta.get("price_source") or ""))  # fmt: skip

    def scaled_to_zero_usd_month(
        self, dep: Deployment, tokens_per_day: float, output_share: float, catalog: Any
    ) -> float | None:
        """What the same fleet would cost a month if it scaled to zero between requests at
        this traffic (busy hours only); None when it already does, or when others share it."""
        from gateway.cost.serving import rented_route

        meta = dep.meta or {}
        hw = catalog.hardware.get(str(meta.get("hardware")))
        if not meta.get("min_replicas") or hw is None or rs.share(meta) < 1:
            return None  # already at zero; or shared (one member's traffic is not the fleet's)
        hw = hw.model_copy(update={"rent": [r for r in hw.rent if r.cloud == meta.get("cloud")]})
        route = rented_route(catalog.model(str(meta["base"])), hw, tokens_per_day, False, catalog,
                             1024, output_share)  # fmt: skip
        return route.usd_month.likely if route.feasible else None

    def live_status(self, dep: Deployment) -> dict[str, Any]:
        """What SkyServe says now: the service's state and each replica's (with `alive`, the
        ones billed or about to be). Members of one service listed together ask once."""
        import time

        from providers.runners import sky_serve

        service = str(dep.meta["service"])
        asked_at, found = _ASKED.get(service, (0.0, None))
        if time.monotonic() - asked_at > STATUS_FRESH_S:
            found = sky_serve.status(service, reasons=True)
            _ASKED[service] = (time.monotonic(), found)
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

    if (job.spec or {}).get("method") == "full":
        return False
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


def _terms(job: Any, options: DeployOptions) -> dict[str, Any]:
    """What a service's members must agree on (`rented_service.to_join`)."""
    serving = (job.spec or {}).get("serving") or {}
    return {"spot": bool(options.spot), "held_to": options.on,
            "always_on": _always_on(job) and not options.scale_to_zero,
            "output_share": float(serving.get("output_share") or 0.25)}  # fmt: skip


def _service(
    src: DeploySource,
    me: dict[str, Any],
    terms: dict[str, Any],
    options: DeployOptions,
    catalog: Any,
    gguf: bool,
) -> tuple[str | None, str]:
    """The service this deployment belongs to (its own when it is live, else one to join
    under `--engine auto|shared`), or None and why it gets one of its own."""
    if src.same is not None:
        return str(src.same.meta["service"]), str(src.same.meta.get("own_service") or "")
    if gguf:
        return None, src.alone_because or "a full fine-tune: llama.cpp serves its GGUF alone"
    if options.engine == "own":
        return None, rs.OWN
    base = src.job.base_model  # type: ignore[union-attr]
    service, why = rs.to_join(src.peers, me, base, terms, catalog)
    if service is None and options.engine == "shared":
        raise DeployError(f"cannot join a rented service of {base}: {why}",
                          fix="--engine auto gives it a service of its own")  # fmt: skip
    return service, why


def _context(job: Any) -> int:
    from gateway.cost.serving import serving_context

    report = (job.estimate or {}).get("report") or {}
    seq = int(((job.spec or {}).get("training") or {}).get("max_seq_len") or 2048)
    return serving_context(seq, float(report.get("avg_tokens") or 256))


def _rank(job: Any) -> int:
    return int(((job.spec or {}).get("lora") or {}).get("r") or 16)


def _volume(job: Any, options: DeployOptions) -> float:
    serving = (job.spec or {}).get("serving") or {}
    volume = float(options.serve or serving.get("tokens_per_day") or 0)
    if volume <= 0:
        raise DeployError(
            "a rented fleet is sized to its traffic, and this job states none",
            fix="--serve 200M/day (or serving.tokens_per_day in the job file)",
        )
    return volume


def _gguf(src: DeploySource) -> Path | None:
    path = src.path
    return path if path is not None and path.suffix == ".gguf" and path.is_file() else None


def _vllm_problems(job: Any) -> list[str]:
    """Why vLLM cannot apply this job's local adapter (none for one only in a bucket)."""
    from gateway.journal.records import job_dir
    from providers.jobdir import JobDir

    folder = JobDir(job_dir(job.id)).adapter
    if not (folder / "adapter_config.json").is_file():
        return []
    from exporters.deploy.vllm import Vllm

    return Vllm().join_problems(folder)


def _adapter_uri(job: Any, service: str, name: str) -> str:
    """The adapter in a bucket: the rented job's own folder, else where deploy uploads it
    (a folder per member of the service)."""
    jobdir = (job.remote or {}).get("bucket_jobdir")
    if jobdir:
        return f"{str(jobdir).rstrip('/')}/adapter"
    return f"{_bucket()}/deployments/{service}/adapters/{name}"


def _model_uri(gguf: Path, service: str) -> str:
    return f"{_bucket()}/deployments/{service}/model/{gguf.name}"


def _bucket() -> str:
    from providers.runners.sky_jobs import _configured_bucket

    return _configured_bucket().rstrip("/")


def _upload(meta: dict[str, Any]) -> None:
    """What the replicas copy, put in the deployment's bucket folder (once): the adapter of a
    job trained elsewhere, or the GGUF. A rented job's own folder already holds its adapter."""
    from providers.runners.bucket import JobBucket

    service = str(meta["service"])
    if meta.get("engine") == "llamacpp":
        uri, files = str(meta["model_uri"]), [Path(str(meta["gguf_path"]))]
        folder = "model"
    else:
        uri = str(meta["adapter_uri"])
        if f"/deployments/{service}/" not in uri:
            return
        from gateway.journal.records import job_dir
        from providers.jobdir import JobDir

        adapter = JobDir(job_dir(str(meta["job"]))).adapter
        if not (adapter / "adapter_config.json").is_file():
            raise DeployError(f"job {meta['job']} has no adapter at {adapter}",
                              fix=f"tunegate fetch {meta['job']}")  # fmt: skip
        files = sorted(p for p in adapter.iterdir() if p.is_file())
        folder = f"adapters/{meta['lora_name']}"
    bucket = JobBucket(uri.split(f"/deployments/{service}/")[0] + "/deployments", service)
    if not bucket.names(folder):
        for path in files:
            bucket.put(f"{folder}/{path.name}", path)


def _sync_members(meta: dict[str, Any], but_name: str) -> None:
    """Every other live member of the service gets the service's new spec and fleet."""
    from gateway.journal import Journal
    from gateway.journal.deployments import deployments

    with Journal() as journal:
        for dep in rs.members(str(meta["service"]), deployments(journal)):
            if dep.name != but_name:
                journal.update_deployment(dep.id, meta=rs.synced(dep, meta))
