"""Rented GPUs through SkyPilot as a runner: a local backend's job run as a SkyPilot managed
job (`providers.runners.sky_jobs` holds the task, the bridge and the state mapping), the
policy for which rented offers can start from here, the Axolotl preview of the several-node
route, and what `tunegate doctor` says about renting.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gateway.errors import JobError, PlanError
from gateway.journal import JobRecord
from gateway.journal.records import JobUpdate
from providers.runners import sky_jobs
from providers.runners.base import Worker

BLOCKS = "rented GPUs (tunegate train --on CLOUD)"


class SkyPilot:
    """The unchanged worker as a SkyPilot managed job, its folder in the configured bucket."""

    kind = "rented"
    here = False

    # which offers can start ---------------------------------------------------------------
    def blocker(self, offer: Any) -> str | None:
        """SkyPilot installed, a bucket configured, and the offer's cloud one SkyPilot rents
        from and has enabled (its cached answer, else rules.yaml). A cloud that cannot mount
        the bucket is no blocker: its worker syncs the job's folder (`bucket_sync`)."""
        from gateway.catalog import load_catalog
        from providers.runners.sky_prices import cached, cloud_blocker

        return sky_jobs.not_ready() or cloud_blocker(offer.cloud, load_catalog(), cached())

    def choose(self, offers: list[Any], backend: str | None, on: str) -> Any:
        """The offer `--on CLOUD` (or `any`) rents: the cloud asked for, else the GPU that fits
        cheapest wherever it can start (SkyPilot then asks for it there, `any_of`)."""
        from gateway.catalog import load_catalog
        from providers.runners.sky_prices import cached, cloud_blocker

        blocked = sky_jobs.not_ready()
        if blocked:
            raise PlanError(f"cannot rent a GPU from here: {blocked}", fix="tunegate doctor")
        catalog, view = load_catalog(), cached()
        refused = cloud_blocker(on, catalog, view) if on != "any" else None
        if refused:
            raise PlanError(f"cannot rent on {on}: {refused}", fix="--on aws, gcp, lambda, ...")
        rented = [o for o in offers if o.kind == self.kind and o.feasible]
        if backend not in (None, "auto"):
            rented = [o for o in rented if o.provider == backend]
        if on == "any":
            choice = [o for o in rented if cloud_blocker(o.cloud, catalog, view) is None][:1]
        else:
            choice = ([o for o in rented if o.cloud == on] or rented)[:1]
        if not choice:
            raise PlanError(
                f"no rented GPU fits this job for {backend or 'any backend'}",
                fix="tunegate plan JOB --all shows every rented offer and why it was refused",
            )
        return choice[0]

    def check_ready(self) -> None:
        sky_jobs.check_ready()

    def preview(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        """The Axolotl config of a job on the several-node route (None on the worker route)."""
        if not sky_jobs.uses_axolotl(spec):
            return None
        from providers.runners.axolotl import preview

        config, problem = preview(spec)
        return {"config": config, "problem": problem}

    # the job ------------------------------------------------------------------------------
    def base_path(self, base_model: str) -> str:
        return base_model  # the rented machine downloads the base from the hub itself

    def stage(self, rec: JobRecord, jobdir: Path) -> None:
        sky_jobs.upload(rec, jobdir)

    def start(self, rec: JobRecord, worker: Worker, *, resume: bool = False) -> str:
        return sky_jobs.launch(rec, worker.worker, worker.extras, sync=synced(rec))

    def find(self, rec: JobRecord) -> str | None:
        return sky_jobs.find(rec)

    def resume(self, rec: JobRecord, worker: Worker) -> str:
        raise JobError(
            f"job {rec.id} ran on a rented GPU: SkyPilot already restarts it after a "
            "preemption, from its newest complete checkpoint",
            fix="tunegate train the job again; its bucket folder keeps the checkpoints",
        )

    def poll(self, rec: JobRecord) -> JobUpdate:
        return sky_jobs.poll(rec)

    def logs(self, rec: JobRecord, lines: int) -> str:
        return "\n".join(sky_jobs.logs(rec, lines).splitlines()[-lines:])

    def cancel(self, rec: JobRecord) -> None:
        sky_jobs.cancel(rec)

    def collect(self, rec: JobRecord) -> None:
        sky_jobs.fetch_adapter(rec)

    # tunegate doctor ----------------------------------------------------------------------
    def checks(self, refresh: bool = False) -> list[Any]:
        """SkyPilot's interpreter, the bucket for job folders, the enabled clouds (asked of
        SkyPilot itself with `refresh`, as `sky check` does; else its cached answer)."""
        from gateway.catalog.config import load_config
        from gateway.util.checks import Check
        from providers.runners.sky_prices import cached
        from providers.runners.sky_prices import refresh as ask

        python = sky_jobs.sky_python()
        out = [
            Check("rented", "skypilot", True, f"SkyPilot runs in {python}")
            if python
            else Check("rented", "skypilot", None, "not installed", BLOCKS,
                       "pipx install 'skypilot[aws]' (its own environment: it pins click<8.2), "
                       "or set skypilot.python in $TUNEGATE_HOME/config.yaml")
        ]  # fmt: skip
        bucket = load_config().skypilot.bucket
        out.append(
            Check("rented", "bucket", True, bucket)
            if bucket
            else Check("rented", "bucket", None, "none configured", BLOCKS,
                       "skypilot.bucket: s3://bucket/prefix in $TUNEGATE_HOME/config.yaml")
        )  # fmt: skip
        if python is None:
            return out
        view = cached()
        if refresh:
            try:
                view = ask()
            except Exception as exc:  # SkyPilot's own error, said plainly
                out.append(
                    Check("rented", "clouds", False, f"SkyPilot did not answer: {exc}", BLOCKS)
                )
                return out
        out.append(_clouds(view))
        return out


def synced(rec: JobRecord) -> bool:
    """Whether the job's cloud cannot mount a bucket, so its worker syncs the folder."""
    from gateway.catalog import load_catalog
    from providers.runners.sky_prices import cached, cloud_mounts

    cloud = ((rec.spec or {}).get("resources") or {}).get("cloud")
    return not cloud_mounts(cloud, load_catalog(), cached())


def _clouds(view: Any) -> Any:
    from gateway.util.checks import Check

    if view is None:
        return Check("rented", "clouds", None, "not asked yet", "prices from SkyPilot's catalogs",
                     "tunegate doctor --clouds")  # fmt: skip
    ready = [c for c in view.enabled if view.blocker(c) is None]
    synced = [c for c in ready if view.mounts(c) is False]
    detail = f"enabled: {', '.join(view.enabled) or 'none'}"
    if synced:
        detail += f"; no bucket mount, the job's folder synced by its worker: {', '.join(synced)}"
    age = (time.time() - view.as_of) / 3600
    detail += f" ({len(view.prices)} prices, asked {age:.0f} h ago)"
    fix = "" if ready and not view.stale else "sky check, then tunegate doctor --clouds"
    return Check("rented", "clouds", bool(ready), detail, "" if ready else BLOCKS, fix)
