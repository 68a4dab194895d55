"""A/B experiments on an alias, and the quality signals applications send back.

An experiment splits an alias's traffic between its incumbent (the alias's first deployment
when it started) and a candidate deployment. At most one runs per alias (a unique index, so two
terminals cannot start two). Ending it is one transaction that checks it is still running and,
for a promotion, rewrites the alias in the same breath: two `promote`/`rollback` commands
racing leave exactly one decision and a whole alias.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from gateway.errors import ServeError
from gateway.journal.serving import ServeStore

RUNNING, STOPPED, PROMOTED, ROLLED_BACK = "running", "stopped", "promoted", "rolled_back"
ARMS = ("incumbent", "candidate")


@dataclass(frozen=True)
class Experiment:
    id: str
    alias: str
    incumbent: str  # deployment id
    candidate: str  # deployment id
    share: float  # of the alias's users sent to the candidate, 0-1
    state: str
    settings: dict[str, Any]
    decision: dict[str, Any] | None
    created_at: float
    updated_at: float
    ended_at: float | None

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _row(r: Any) -> Experiment:
    return Experiment(
        r["id"],
        r["alias"],
        r["incumbent"],
        r["candidate"],
        float(r["share"]),
        r["state"],
        json.loads(r["settings_json"] or "{}"),
        json.loads(r["decision_json"]) if r["decision_json"] else None,
        r["created_at"],
        r["updated_at"],
        r["ended_at"],
    )


class _Refused(Exception):
    """Raised inside a transaction to roll it back; the caller explains why."""


class Experiments:
    """Experiments and feedback in the journal, through the server's store."""

    def __init__(self, store: ServeStore):
        self.store = store

    def start(
        self, alias: str, incumbent: str, candidate: str, share: float, settings: dict[str, Any]
    ) -> Experiment:
        if not 0 < share <= 1:
            raise ServeError(
                f"share {share:g} is not a fraction of traffic", fix="e.g. --share 10%"
            )
        now = time.time()
        exp_id = "exp-" + uuid.uuid4().hex[:10]
        try:
            with self.store.transaction() as db:
                db.execute(
                    "INSERT INTO experiments (id, alias, incumbent, candidate, share, state,"
                    " settings_json, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (exp_id, alias, incumbent, candidate, share, RUNNING, json.dumps(settings),
                     now, now),
                )  # fmt: skip
        except self.store.db.integrity_errors:
            raise ServeError(
                f"an experiment already runs on '{alias}'",
                fix=f"tunegate ab status {alias}; end it with stop, promote or rollback",
            ) from None
        return self.get(exp_id)

    def get(self, ref: str) -> Experiment:
        """By id, or by alias: its running experiment, else its newest."""
        rows = self.store._read(
            "SELECT * FROM experiments WHERE id = ? OR alias = ?"
            " ORDER BY state = 'running' DESC, created_at DESC LIMIT 1",
            (ref, ref),
        )
        if not rows:
            raise ServeError(
                f"no experiment '{ref}'", fix="tunegate ab start ALIAS --candidate DEP"
            )
        return _row(rows[0])

    def running(self) -> dict[str, Experiment]:
        """alias -> its running experiment (what the server routes by)."""
        rows = self.store._read("SELECT * FROM experiments WHERE state = 'running'")
        return {r["alias"]: _row(r) for r in rows}

    def all(self) -> list[Experiment]:
        return [_row(r) for r in self.store._read("SELECT * FROM experiments ORDER BY created_at")]

    def set_share(self, ref: str, share: float) -> Experiment:
        """Change the candidate's share while it runs (the server sees it within seconds)."""
        if not 0 < share <= 1:
            raise ServeError(f"share {share:g} is not a fraction of traffic", fix="e.g. 25%")
        exp = self._running(ref)
        with self.store.transaction() as db:
            db.execute(
                "UPDATE experiments SET share = ?, updated_at = ? WHERE id = ? AND state = ?",
                (share, time.time(), exp.id, RUNNING),
            )
        return self.get(exp.id)

    def end(
        self,
        ref: str,
        state: str,
        decision: dict[str, Any],
        alias_targets: list[str] | None = None,
    ) -> Experiment:
        """End a running experiment with `decision` (the numbers that decided it); with
        `alias_targets`, the alias becomes them in the same transaction. An experiment that
        ended meanwhile (another terminal) is refused, naming how it ended."""
        exp = self._running(ref)
        now = time.time()
        with self.store.transaction() as db:
            cur = db.execute(
                "UPDATE experiments SET state = ?, decision_json = ?, updated_at = ?, ended_at = ?"
                " WHERE id = ? AND state = ?",
                (state, json.dumps(decision), now, now, exp.id, RUNNING),
            )
            if cur.rowcount == 1 and alias_targets is not None:
                db.execute(
                    "UPDATE aliases SET targets_json = ?, updated_at = ? WHERE name = ?",
                    (json.dumps(alias_targets), now, exp.alias),
                )
        if cur.rowcount != 1:
            done = self.get(exp.id)
            raise ServeError(f"experiment {exp.id} on '{exp.alias}' is already {done.state}")
        return self.get(exp.id)

    def undo_promotion(
        self, ref: str, decision: dict[str, Any], promoted: list[str], restored: list[str]
    ) -> Experiment:
        """Roll back a promoted experiment: the alias goes back to `restored` only if it is
        still `promoted` (what the promotion made it), in the same transaction as the state;
        an alias changed since (by hand, or a later experiment) is refused, not overwritten."""
        exp = self.get(ref)
        if exp.state != PROMOTED:
            raise ServeError(f"experiment {exp.id} on '{exp.alias}' is {exp.state}, not promoted")
        now = time.time()
        try:
            with self.store.transaction() as db:
                newer = db.execute(
                    "SELECT id FROM experiments WHERE alias = ? AND created_at > ? LIMIT 1",
                    (exp.alias, exp.created_at),
                ).fetchone()
                if newer is not None:
                    raise _Refused(f"a later experiment ({newer['id']}) ran on '{exp.alias}'")
                ended = db.execute(
                    "UPDATE experiments SET state = ?, decision_json = ?, updated_at = ?"
                    " WHERE id = ? AND state = ?",
                    (ROLLED_BACK, json.dumps(decision), now, exp.id, PROMOTED),
                )
                if ended.rowcount != 1:
                    raise _Refused(f"experiment {exp.id} was rolled back meanwhile")
                alias = db.execute(
                    "UPDATE aliases SET targets_json = ?, updated_at = ? WHERE name = ?"
                    " AND targets_json = ?",
                    (json.dumps(restored), now, exp.alias, json.dumps(promoted)),
                )
                if alias.rowcount != 1:
                    raise _Refused(f"'{exp.alias}' changed since the promotion")
        except _Refused as why:  # the transaction rolled back: nothing half-changed
            raise ServeError(
                f"cannot roll back {exp.id}: {why}", fix=f"tunegate aliases set {exp.alias} ..."
            ) from None
        return self.get(exp.id)

    def _running(self, ref: str) -> Experiment:
        exp = self.get(ref)
        if not exp.running:
            raise ServeError(f"experiment {exp.id} on '{exp.alias}' is {exp.state}, not running")
        return exp

    # feedback -----------------------------------------------------------------------------
    def add_feedback(self, request_id: str, score: float, source: str, key_id: str | None) -> None:
        """A quality signal for one answered request (0-1), from `source` (app: an application's
        feedback, scorer: the experiment's scorer against the request's reference); the newest
        of a source for a request wins."""
        if not 0 <= score <= 1:
            raise ServeError(f"score {score:g} is outside 0-1", fix="a score in 0-1, or thumbs")
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO feedback (request_id, score, source, key_id, created_at)"
                " VALUES (?,?,?,?,?) ON CONFLICT(request_id, source) DO UPDATE SET"
                " score = excluded.score, created_at = excluded.created_at",
                (request_id, score, source, key_id, time.time()),
            )

    def feedback(self, experiment_id: str) -> dict[str, dict[str, float]]:
        """source (app, scorer) -> request id -> score, for the experiment's requests."""
        rows = self.store._read(
            "SELECT f.request_id, f.source, f.score FROM feedback f JOIN usage u"
            " ON u.request_id = f.request_id WHERE u.experiment_id = ?",
            (experiment_id,),
        )
        out: dict[str, dict[str, float]] = {}
        for r in rows:
            out.setdefault(r["source"], {})[r["request_id"]] = float(r["score"])
        return out

    # bodies (`--log-bodies`) ---------------------------------------------------------------
    def add_body(
        self, exp: Experiment, request_id: str, arm: str, prompt_json: str, answer: str | None
    ) -> None:
        """Keep one request's prompt and answer (the caller redacts them); rows older than the
        experiment's retention are removed in the same transaction."""
        days = float((exp.settings.get("log_bodies") or {}).get("retention_days") or 30)
        now = time.time()
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO experiment_bodies (request_id, experiment_id, arm, prompt_json,"
                " answer, created_at) VALUES (?,?,?,?,?,?) ON CONFLICT (request_id) DO UPDATE"
                " SET experiment_id = excluded.experiment_id, arm = excluded.arm,"
                " prompt_json = excluded.prompt_json, answer = excluded.answer,"
                " created_at = excluded.created_at",
                (request_id, exp.id, arm, prompt_json, answer, now),
            )
            db.execute(
                "DELETE FROM experiment_bodies WHERE experiment_id = ? AND created_at < ?",
                (exp.id, now - days * 86_400),
            )

    def bodies(self, ref: str) -> list[dict[str, Any]]:
        """The kept prompts and answers of an experiment, oldest first."""
        exp = self.get(ref)
        rows = self.store._read(
            "SELECT request_id, arm, prompt_json, answer, created_at FROM experiment_bodies"
            " WHERE experiment_id = ? ORDER BY created_at",
            (exp.id,),
        )
        return [{**dict(r), "prompt": json.loads(r["prompt_json"])} for r in rows]

    def forget(self, ref: str) -> int:
        """Delete every kept body of an experiment; how many were deleted."""
        exp = self.get(ref)
        with self.store.transaction() as db:
            cur = db.execute("DELETE FROM experiment_bodies WHERE experiment_id = ?", (exp.id,))
        return int(cur.rowcount)
