"""Which deployments answer a `model` name: an alias (an ordered list: the first that answers
wins, the rest are fallbacks), else a live deployment's name (the newest of that name, so a
redeploy under the same name needs no client change), else a deployment id. Anything else is
unknown, and the server says so instead of answering with another model.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from exporters.deploy import get_deployer, price_of
from exporters.deploy.base import Shares, Upstream
from gateway.catalog import Catalog, load_catalog
from gateway.cost.deployments import Price
from gateway.errors import TunegateError
from gateway.journal import Journal
from gateway.journal.deployments import Deployment, deployments
from gateway.journal.experiments import Experiment, Experiments
from gateway.journal.serving import ServeStore

REFRESH_S = 5.0


@dataclass
class Target:
    """A deployment as the server uses it: how to reach it and what it costs."""

    deployment: Deployment
    price: Price
    upstream: Upstream | None = None
    problem: str | None = None  # why it cannot be reached (e.g. its key is not set)


@dataclass
class Registry:
    """Deployments and aliases, reloaded from the journal every few seconds. Each reload opens
    its own connection, so any thread may call it (SQLite connections stay in their thread)."""

    store: ServeStore
    journal_path: Path
    catalog: Catalog = field(default_factory=load_catalog)
    _loaded: float = 0.0
    _live: dict[str, Deployment] = field(default_factory=dict)  # by id
    _by_name: dict[str, Deployment] = field(default_factory=dict)
    _aliases: dict[str, list[str]] = field(default_factory=dict)
    _targets: dict[str, Target] = field(default_factory=dict)
    _groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # engine group -> ids
    _experiments: dict[str, Experiment] = field(default_factory=dict)  # running, by alias

    def refresh(self, *, force: bool = False) -> None:
        """Reload deployments and aliases from the journal (at most every few seconds). A
        member joining or leaving an engine group changes every member's upstream (the
        engine's adapters and each request's pick), so the group's targets are rebuilt."""
        if not force and time.monotonic() - self._loaded < REFRESH_S:
            return
        try:
            self._reload()
        except Exception as exc:  # the store is away: serve what was last read, retry later
            if not self._live and not self._aliases:
                raise
            print(f"tunegate serve: could not reload deployments ({exc}); serving the last "
                  "view", file=sys.stderr)  # fmt: skip
            self._loaded = time.monotonic()

    def _reload(self) -> None:
        with Journal(self.journal_path) as journal:
            live = [d for d in deployments(journal) if d.state == "live"]
            groups = _groups(live)
            for dep in live:
                group = dep.meta.get("group")
                if group and groups.get(group) != self._groups.get(group):
                    self._targets.pop(dep.id, None)
                if dep.id not in self._targets:
                    self._targets[dep.id] = self._target(dep, journal, live)
        self._groups = groups
        self._live = {d.id: d for d in live}
        self._by_name = {}
        for dep in reversed(live):  # oldest first, so the newest of a name wins
            self._by_name[dep.name] = dep
        self._aliases = self.store.aliases()
        self._experiments = Experiments(self.store).running()
        self._targets = {k: t for k, t in self._targets.items() if k in self._live}
        self._loaded = time.monotonic()

    def names(self) -> list[str]:
        self.refresh()
        return sorted(set(self._aliases) | set(self._by_name))

    def resolve(self, model: str) -> list[Target] | None:
        """The ordered targets for `model`, or None when the name is unknown."""
        self.refresh()
        chain = self._chain(model)
        if chain is None:
            self.refresh(force=True)  # a deployment made a moment ago
            chain = self._chain(model)
        return None if chain is None else [self._targets[d.id] for d in chain]

    def experiment(self, model: str) -> Experiment | None:
        """The experiment running on `model`, when it names an alias that has one."""
        self.refresh()
        return self._experiments.get(model)

    def arm_chain(self, exp: Experiment, arm: str, chain: list[Target]) -> list[Target]:
        """The alias's chain for one arm: the candidate first, its fallbacks the incumbent's
        chain; or the incumbent's chain without the candidate. A candidate that is no longer
        live leaves every request with the incumbent."""
        rest = [t for t in chain if t.deployment.id != exp.candidate]
        if arm != "candidate":
            return rest
        dep = self._live.get(exp.candidate)
        return ([self._targets[dep.id]] if dep is not None else []) + rest

    def _chain(self, model: str) -> list[Deployment] | None:
        if model in self._aliases:
            found = [self._one(ref) for ref in self._aliases[model]]
            return [d for d in found if d is not None]
        dep = self._one(model)
        return None if dep is None else [dep]

    def _one(self, ref: str) -> Deployment | None:
        return self._by_name.get(ref) or self._live.get(ref)

    def _target(self, dep: Deployment, journal: Journal, live: list[Deployment]) -> Target:
        target = Target(dep, price_of(dep, journal, self.catalog))
        try:
            deployer = get_deployer(dep.target)
            if isinstance(deployer, Shares) and dep.meta.get("group"):
                peers = [d for d in live if d.target == dep.target]
                target.upstream = deployer.upstream_among(dep, peers)
            else:
                target.upstream = deployer.upstream(dep)
        except TunegateError as exc:
            target.problem = exc.message
        return target


def _groups(live: list[Deployment]) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for dep in live:
        if dep.meta.get("group"):
            found.setdefault(str(dep.meta["group"]), []).append(dep.id)
    return {k: tuple(sorted(v)) for k, v in found.items()}
