"""What SkyPilot says about renting, cached so `tunegate plan` stays fast and offline: the
clouds `sky check` enabled, what each can do for a tunegate job (mount a bucket, run several
nodes), and every GPU's hourly price there from SkyPilot's own catalogs (on-demand and spot,
with the cloud, region and instance).

`refresh()` asks SkyPilot through the bridge (`tunegate doctor --clouds`); the planner reads the
cache only. Without a cache, rented offers are priced from tunegate's catalog and what each
cloud can do comes from `rules.yaml` (`rented_clouds`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STALE_S = 7 * 86_400  # a week: SkyPilot refreshes its own catalogs every few hours


def cache_path() -> Path:
    from gateway.catalog import tunegate_home

    return tunegate_home() / "skypilot" / "clouds.json"


@dataclass
class SkyView:
    as_of: float
    enabled: list[str]  # lower-case cloud names
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    prices: list[dict[str, Any]] = field(default_factory=list)

    def blocker(self, cloud: str) -> str | None:
        """Why a tunegate job cannot be launched on `cloud` (None: it can). A cloud that
        cannot mount a bucket can: its worker keeps the job's folder in the bucket itself."""
        cloud = cloud.lower()
        if cloud not in self.enabled:
            enabled = ", ".join(self.enabled) or "none"
            return f"{cloud} is not enabled in SkyPilot (enabled: {enabled}; `sky check {cloud}`)"
        return None

    def mounts(self, cloud: str) -> bool | None:
        """Whether SkyPilot mounts a bucket on `cloud` (None: it did not say)."""
        info = self.features.get(cloud.lower())
        return None if not info else bool(info.get("mounts_buckets", True))

    def cheapest(
        self,
        accelerator: str,
        count: int = 1,
        *,
        spot: bool = False,
        clouds: list[str] | None = None,
    ) -> dict[str, Any] | None:
        """The cheapest row for `count` x `accelerator` on a cloud a job can launch on."""
        best: tuple[float, dict[str, Any]] | None = None
        for row in self.prices:
            cloud = str(row["cloud"]).lower()
            if row["accelerator"].lower() != accelerator.lower() or int(row["count"]) != count:
                continue
            if self.blocker(cloud) or (clouds and cloud not in clouds):
                continue
            price = (row.get("spot_usd_per_hour") if spot else None) or row["usd_per_hour"]
            if price and (best is None or price < best[0]):
                best = (float(price), {**row, "cloud": cloud, "price": float(price)})
        return best[1] if best else None

    @property
    def stale(self) -> bool:
        return time.time() - self.as_of > STALE_S


def cached() -> SkyView | None:
    path = cache_path()
    try:
        return SkyView(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def refresh() -> SkyView:
    """Ask SkyPilot now (its API server starts if it is not running) and cache the answer."""
    from gateway.catalog import load_catalog
    from providers.runners.sky_jobs import bridge

    enabled = [c.lower() for c in bridge("enabled", {}).get("clouds") or []]
    features = bridge("features", {"clouds": enabled}).get("clouds") if enabled else {}
    names = sorted({hw.skypilot for hw in load_catalog().hardware.values() if hw.skypilot})
    rows = []
    if enabled:
        request = {"accelerators": names, "clouds": enabled}
        rows = bridge("prices", request).get("offers") or []
    view = SkyView(time.time(), enabled, dict(features or {}), rows)
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(view)))
    tmp.replace(path)
    return view


def cloud_blocker(cloud: str | None, catalog: Any, view: SkyView | None = None) -> str | None:
    """Why tunegate cannot launch on `cloud`: SkyPilot's cached answer, else rules.yaml."""
    if not cloud:
        return None
    if view is not None:
        return view.blocker(cloud)
    rule = catalog.rules.rented_clouds.get(cloud.lower())
    if rule is None or rule.skypilot:
        return None
    return rule.why or f"SkyPilot does not rent from {cloud}"


def cloud_mounts(cloud: str | None, catalog: Any, view: SkyView | None = None) -> bool:
    """Whether the job's folder can be a bucket mounted on `cloud` (SkyPilot's answer, else
    rules.yaml; an unknown or unnamed cloud is left to SkyPilot, which only picks clouds that
    can mount what the task mounts). False: the folder is synced (`bucket_sync`)."""
    if not cloud:
        return True
    said = view.mounts(cloud) if view is not None else None
    if said is not None:
        return said
    rule = catalog.rules.rented_clouds.get(cloud.lower())
    return True if rule is None else rule.mounts_buckets
