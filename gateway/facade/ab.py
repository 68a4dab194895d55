"""Live A/B on an alias (`tunegate ab`): a candidate deployment earns its traffic.

`start` splits the alias's users between its incumbent and a candidate (sticky per user, a
share that can change while it runs, `gateway.serve.split`); `status` reads every experiment
request the gateway metered and every score applications sent (`POST /tunegate/feedback`),
and gives, per arm, requests, failures, latency p50/p95 and $/1k requests, and the candidate's
delta on each signal with an interval valid however often it is read
(`gateway.evaluate.sequential`). `promote` makes the candidate the alias's first deployment
(the incumbent stays as its fallback), `rollback` and `stop` end it leaving the alias as it
was (a `rollback` after a promotion puts the alias back, unless it changed since); each is journaled with the numbers at that moment, and a second terminal racing the first
is refused (`gateway.journal.experiments`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ServeError
from gateway.evaluate.sequential import Difference, difference
from gateway.journal import Journal
from gateway.journal.deployments import get_deployment
from gateway.journal.experiments import (
    ARMS,
    PROMOTED,
    ROLLED_BACK,
    STOPPED,
    Experiment,
    Experiments,
)
from gateway.journal.serving import ServeStore, UsageRecord
from gateway.util.units import percentile


@dataclass
class Arm:
    """One arm's traffic in the experiment."""

    name: str  # incumbent | candidate
    deployment: str
    requests: int = 0
    failures: int = 0  # errors, and candidate requests the incumbent had to answer
    p50_ms: float | None = None
    p95_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0  # metered (per-token routes); hourly routes are in `tunegate usage`
    scored: int = 0  # requests with feedback

    @property
    def usd_per_1k(self) -> float | None:
        return self.usd / self.requests * 1000 if self.requests else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "usd_per_1k": self.usd_per_1k}


@dataclass
class Status:
    experiment: Experiment
    arms: dict[str, Arm]
    signals: dict[str, Difference] = field(default_factory=dict)  # feedback, success, ...
    judge_usd: float = 0.0  # what judging shadow pairs has cost (estimated before each call)

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment.to_json(),
            "arms": {k: a.to_json() for k, a in self.arms.items()},
            "signals": {k: d.to_json() for k, d in self.signals.items()},
            "judge_usd": self.judge_usd,
        }


def _store(journal_path: Path | str | None) -> ServeStore:
    return ServeStore(journal_path)


@dataclass(frozen=True)
class Auto:
    """When the gateway decides by itself (`start(auto=...)`): promote on a clear win on the
    application's feedback; roll back on a clear loss on feedback or success, or when the
    candidate fails more often than the incumbent by `max_error_rate`; never before each arm
    has `min_requests`."""

    min_requests: int = 30
    max_error_rate: float = 0.05


@dataclass(frozen=True)
class Judge:
    """A judge of shadow pairs: `target` is URL#MODEL (an OpenAI-compatible endpoint; a
    deployment through the gateway: http://127.0.0.1:8765/v1#NAME), never one of the arms."""

    target: str
    rubric: str | None = None
    sample: float = 0.1  # of the shadowed requests
    price: str | None = None  # IN/OUT USD per 1M tokens (default 0: local)
    max_usd: float = 1.0


def _judge_settings(judge: Judge, shadow: bool, arms: set[str]) -> dict[str, Any]:
    from gateway.evaluate.judge import JudgePrice

    url, _, model = judge.target.partition("#")
    if not shadow:
        raise ServeError("a judge compares shadow pairs", fix="add --shadow")
    if not url.startswith(("http://", "https://")) or not model:
        raise ServeError(
            f"judge {judge.target!r}: expected URL#MODEL", fix="e.g. http://127.0.0.1:8080/v1#judge"
        )
    if model in arms:
        raise ServeError(f"the judge {model} is one of the experiment's arms", fix="another model")
    if not 0 < judge.sample <= 1:
        raise ServeError(f"judge sample {judge.sample:g} is not a fraction", fix="e.g. 10%")
    JudgePrice.parse(judge.price)  # refused now, not on the first pair
    return asdict(judge)


def start(
    alias: str,
    candidate: str,
    share: float,
    *,
    margin: float = 0.0,
    auto: Auto | None = None,
    shadow: bool = False,
    max_usd: float | None = None,
    scorer: str | None = None,
    pattern: str | None = None,
    log_bodies_days: float | None = None,
    judge: Judge | None = None,
    journal_path: Path | str | None = None,
) -> Experiment:
    """Split `alias` between its first deployment and `candidate` (a deployment name or id).
    With `shadow`, clients always get the incumbent's answer and the candidate answers a copy
    of `share` of the requests off the request path, spending at most `max_usd`. `scorer`
    (exact, regex with `pattern`, json, tool) scores each answer whose request carries a
    reference (`metadata.reference`), a signal beside the applications' feedback.
    `log_bodies_days` keeps each request's prompt and answer (redacted) for that many days."""
    with _store(journal_path) as store:
        targets = store.aliases().get(alias)
        if not targets:
            raise ServeError(
                f"'{alias}' is not an alias",
                fix=f"tunegate aliases set {alias} DEPLOYMENT (the incumbent), then start again",
            )
        with Journal(store.path) as journal:
            incumbent = get_deployment(targets[0], journal)
            challenger = get_deployment(candidate, journal)
        if challenger.state != "live":
            raise ServeError(f"the candidate {challenger.name} is {challenger.state}, not live")
        if challenger.id == incumbent.id:
            raise ServeError(f"{challenger.name} already answers '{alias}': choose another")
        settings: dict[str, Any] = {"margin": margin, "alias_before": targets}
        if scorer is not None:
            from gateway.evaluate.scorers import get_scorer

            get_scorer(scorer, pattern=pattern)  # refused now, not on the first request
            settings["scorer"] = {"name": scorer, "pattern": pattern}
        if auto is not None:
            settings["auto"] = asdict(auto)
        if shadow:
            settings["shadow"] = True
            settings["max_usd"] = max_usd
        if log_bodies_days is not None:
            settings["log_bodies"] = {"retention_days": log_bodies_days}
        if judge is not None:
            arms = {alias, *targets, incumbent.id, incumbent.name, challenger.id, challenger.name}
            settings["judge"] = _judge_settings(judge, shadow, arms)
        return Experiments(store).start(alias, incumbent.id, challenger.id, share, settings)


def set_share(ref: str, share: float, *, journal_path: Path | str | None = None) -> Experiment:
    with _store(journal_path) as store:
        return Experiments(store).set_share(ref, share)


def _arm_of(rec: UsageRecord, exp: Experiment) -> tuple[str, bool]:
    """The record's arm, and whether it counts as a failure of that arm."""
    # a shadow copy is the candidate's answer to a request the incumbent served
    arm = "candidate" if rec.arm == "shadow" else rec.arm if rec.arm in ARMS else "incumbent"
    fell_back = arm == "candidate" and exp.candidate in (rec.fallback_from or "").split(",")
    return arm, rec.status >= 400 or fell_back


def status(ref: str, *, journal_path: Path | str | None = None) -> Status:
    """The experiment's arms and the candidate's delta on each signal, as of now."""
    with _store(journal_path) as store:
        exps = Experiments(store)
        exp = exps.get(ref)
        rows = store.usage(since=exp.created_at, experiment_id=exp.id)
        scores = exps.feedback(exp.id)
    arms = {
        "incumbent": Arm("incumbent", exp.incumbent),
        "candidate": Arm("candidate", exp.candidate),
    }
    latency: dict[str, list[float]] = {k: [] for k in ARMS}
    success: dict[str, list[float]] = {k: [] for k in ARMS}
    sources = {"app": "feedback", "scorer": "scorer", "judge": "judge"}  # source -> signal
    signal_scores: dict[str, dict[str, list[float]]] = {
        name: {k: [] for k in ARMS} for name in sources.values()
    }
    judge_usd = 0.0
    for rec in rows:
        if rec.arm == "judge":  # the judge's own calls: its bill, no arm's traffic
            judge_usd += rec.cost_usd or 0.0
            continue
        name, failed = _arm_of(rec, exp)
        arm = arms[name]
        arm.requests += 1
        arm.failures += failed
        success[name].append(0.0 if failed else 1.0)
        if not failed:
            latency[name].append(rec.latency_ms)
        arm.prompt_tokens += rec.prompt_tokens
        arm.completion_tokens += rec.completion_tokens
        arm.usd += rec.cost_usd or 0.0
        for source, signal in sources.items():
            score = scores.get(source, {}).get(rec.request_id)
            if score is not None:
                arm.scored += source == "app"
                signal_scores[signal][name].append(score)
    for name, arm in arms.items():
        arm.p50_ms, arm.p95_ms = percentile(latency[name], 0.5), percentile(latency[name], 0.95)
    margin = float(exp.settings.get("margin") or 0.0)
    signals = {"success": difference(success["incumbent"], success["candidate"], margin)}
    for signal, by_arm in signal_scores.items():
        if by_arm["incumbent"] or by_arm["candidate"]:
            signals[signal] = difference(by_arm["incumbent"], by_arm["candidate"], margin)
    return Status(exp, arms, signals, judge_usd)


def _end(ref: str, state: str, journal_path: Path | str | None, **how: Any) -> Experiment:
    now = status(ref, journal_path=journal_path)
    exp = now.experiment
    decision = {"by": how.pop("by", "hand"), **now.to_json(), **how}
    decision.pop("experiment", None)
    targets = None
    if state == PROMOTED:  # the candidate first, then the alias as it is (its fallbacks)
        with _store(journal_path) as store:
            before = store.aliases().get(exp.alias) or list(exp.settings.get("alias_before") or [])
            with Journal(store.path) as journal:
                kept = [t for t in before if get_deployment(t, journal).id != exp.candidate]
        targets = [exp.candidate, *kept]
        decision.update(alias_before=before, alias_after=targets)  # what a rollback restores
    with _store(journal_path) as store:
        return Experiments(store).end(exp.id, state, decision, alias_targets=targets)


def promote(ref: str, *, journal_path: Path | str | None = None) -> Experiment:
    """The candidate answers the alias from now on; the incumbent stays as its fallback."""
    return _end(ref, PROMOTED, journal_path)


def rollback(ref: str, *, journal_path: Path | str | None = None) -> Experiment:
    """End it for the incumbent: the alias stays as it was. A promoted experiment is undone:
    the alias goes back to what it was before the promotion, if nothing changed it since."""
    with _store(journal_path) as store:
        exp = Experiments(store).get(ref)
        if exp.state != PROMOTED:
            return _end(ref, ROLLED_BACK, journal_path)
        promotion = exp.decision or {}
        if "alias_after" not in promotion:
            raise ServeError(f"{exp.id} was promoted before promotions could be undone")
        decision = {
            **promotion,
            "by": "hand",
            "undid": PROMOTED,
            "promotion_by": promotion["by"],
            "why": f"the promotion ({promotion['by']}) was undone by hand",
        }
        return Experiments(store).undo_promotion(
            exp.id, decision, promotion["alias_after"], promotion["alias_before"]
        )


def stop(ref: str, *, journal_path: Path | str | None = None) -> Experiment:
    """End it without a decision: the alias stays as it was."""
    return _end(ref, STOPPED, journal_path)


def decide(now: Status) -> tuple[str, str] | None:
    """What `--auto` does with the numbers as they stand: (state, why), or None to wait."""
    rules = now.experiment.settings.get("auto")
    if not rules:
        return None
    auto = Auto(**rules)
    inc, cand = now.arms["incumbent"], now.arms["candidate"]
    if min(inc.requests, cand.requests) < auto.min_requests:
        return None
    rate = {a.name: a.failures / a.requests for a in (inc, cand)}
    if rate["candidate"] - rate["incumbent"] > auto.max_error_rate:
        return ROLLED_BACK, (
            f"the candidate failed {rate['candidate']:.1%} of requests, the incumbent "
            f"{rate['incumbent']:.1%}: over the {auto.max_error_rate:.0%} allowed"
        )
    for name, signal in now.signals.items():
        if signal.verdict == "candidate loses":
            return ROLLED_BACK, f"{name}: {_numbers(signal)}"
    for name in ("feedback", "scorer"):
        signal = now.signals.get(name)
        if signal is not None and signal.verdict == "candidate wins":
            return PROMOTED, f"{name}: {_numbers(signal)}"
    return None


def _numbers(d: Difference) -> str:
    return (
        f"candidate {d.candidate:.1f} vs incumbent {d.incumbent:.1f}, delta {d.delta:+.1f} "
        f"[{d.low:+.1f}, {d.high:+.1f}] ({d.verdict})"
    )


def auto_check(journal_path: Path | str | None = None) -> list[Experiment]:
    """Decide every running `--auto` experiment whose numbers are clear (what the gateway runs
    every `TUNEGATE_AB_CHECK_S`); a decision another replica made first is left to it."""
    with _store(journal_path) as store:
        running = [e for e in Experiments(store).running().values() if e.settings.get("auto")]
    decided = []
    for exp in running:
        verdict = decide(status(exp.id, journal_path=journal_path))
        if verdict is None:
            continue
        state, why = verdict
        try:
            decided.append(_end(exp.id, state, journal_path, by="auto", why=why))
        except ServeError:
            continue  # ended meanwhile (a person, or another gateway replica)
    return decided


def bodies(ref: str, *, journal_path: Path | str | None = None) -> list[dict[str, Any]]:
    """The prompts and answers an experiment kept (`--log-bodies`), oldest first."""
    with _store(journal_path) as store:
        return Experiments(store).bodies(ref)


def forget(ref: str, *, journal_path: Path | str | None = None) -> int:
    """Delete every prompt and answer an experiment kept; how many."""
    with _store(journal_path) as store:
        return Experiments(store).forget(ref)
