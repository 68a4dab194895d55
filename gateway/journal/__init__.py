"""The job journal, written *before* every remote side effect: SQLite under $TUNEGATE_HOME,
or a PostgreSQL store shared by gateway replicas (`gateway.journal.db`).

Jobs, their events, artifacts, deployments and eval reports survive crashes: one transaction
per write, versioned migrations from one definition. Values that look like secrets are
dropped before anything is stored.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.errors import JournalError
from gateway.journal.db import Database, open_database, resolve
from gateway.journal.schema import MIGRATIONS
from gateway.util.retry import redact

STATES = ("pending", "uploading", "queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_SECRET_KEY = re.compile(
    r"(api[_-]?key|secret|password|passwd|access[_-]?key|session[_-]?token|authorization|bearer)",
    re.I,
)

SCHEMA_VERSION = MIGRATIONS[-1][0]


@dataclass(frozen=True)
class JobRecord:
    id: str
    provider: str
    kind: str
    state: str
    idempotency_key: str
    remote_id: str | None
    name: str | None
    base_model: str
    spec: dict[str, Any]
    offer: dict[str, Any] | None
    estimate: dict[str, Any] | None
    actual: dict[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    remote: dict[str, Any] | None = None  # provider-side ids: uploaded files, output model names

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True)
class EventRecord:
    id: int
    job_id: str
    ts: float
    kind: str
    message: str
    step: int | None
    data: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "job_id"}


def scrub(value: Any) -> Any:
    """Drop mapping entries whose key names a secret, at any depth."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return redact(json.dumps(scrub(value), default=str, sort_keys=True))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Journal:
    """The journal: SQLite by default, or the PostgreSQL store replicas share. One instance
    per use; safe across processes (WAL and a busy timeout, or PostgreSQL's own locking)."""

    def __init__(self, path: Path | str | None = None):
        self.path: Path | str = resolve(path)  # the file, or the store's URL
        self.reconciled = False  # set once jobs a crash left are reconciled (facade.launch)
        self._db: Database = open_database(self.path)
        self._db.migrate(MIGRATIONS)

    @property
    def db(self) -> Database:
        return self._db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> AbstractContextManager[Any]:
        return self._db.transaction()

    @property
    def version(self) -> int:
        return self._db.version()

    # jobs ---------------------------------------------------------------------------------
    def record_intent(
        self,
        provider: str,
        kind: str,
        base_model: str,
        spec: dict[str, Any],
        *,
        offer: dict[str, Any] | None = None,
        estimate: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> JobRecord:
        """Write the job before anything remote happens; its idempotency key names it remotely."""
        now = time.time()
        job_id = "tg-" + uuid.uuid4().hex[:12]
        key = "tgk-" + uuid.uuid4().hex
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs (id, provider, kind, state, idempotency_key, name, base_model, spec_json,"
                " offer_json, estimate_json, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job_id,
                    provider,
                    kind,
                    "pending",
                    key,
                    name,
                    base_model,
                    _dump(spec),
                    _dump(offer),
                    _dump(estimate),
                    now,
                    now,
                ),
            )
            db.execute(
                "INSERT INTO events (job_id, ts, kind, message) VALUES (?,?,?,?)",
                (job_id, now, "intent", f"job recorded before launch on {provider}"),
            )
        return self.get(job_id)

    def update(self, job_id: str, **fields: Any) -> JobRecord:
        """Update state, remote_id, error or actual; a terminal state stamps finished_at, a
        live one (a resumed job, or a launch that outlived a wrong reconciliation) clears it."""
        allowed = {"state", "remote_id", "error", "actual", "name", "estimate", "remote"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(
                f"unknown state {fields['state']!r} (expected one of {', '.join(STATES)})"
            )
        sets, values = ["updated_at = ?"], [time.time()]
        for key, value in fields.items():
            as_json = key in ("actual", "estimate", "remote")
            column = f"{key}_json" if as_json else key
            sets.append(f"{column} = ?")
            if as_json:
                values.append(_dump(value))
            else:
                values.append(redact(value) if isinstance(value, str) else value)
        if fields.get("state") in TERMINAL:
            sets.append("finished_at = COALESCE(finished_at, ?)")
            values.append(time.time())
        elif "state" in fields:
            sets.append("finished_at = NULL")
        with self._tx() as db:
            cur = db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", (*values, job_id))
            if cur.rowcount == 0:
                raise JournalError(f"no job {job_id}")
        return self.get(job_id)

    def get(self, job_id: str) -> JobRecord:
        """A job by id or unique id prefix."""
        rows = self._db.execute(
            "SELECT * FROM jobs WHERE id = ? OR id LIKE ? LIMIT 2", (job_id, f"{job_id}%")
        ).fetchall()
        exact = [r for r in rows if r["id"] == job_id]
        if exact:
            return _job(exact[0])
        if len(rows) == 1:
            return _job(rows[0])
        if not rows:
            raise JournalError(
                f"no job '{job_id}' in the journal",
                where=str(self.path),
                fix="`tunegate jobs` lists them",
            )
        raise JournalError(
            f"'{job_id}' matches more than one job", fix="give more characters of the id"
        )

    def by_key(self, idempotency_key: str) -> JobRecord | None:
        row = self._db.execute(
            "SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)
        ).fetchone()
        return _job(row) if row else None

    def jobs(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[JobRecord]:
        query, args = "SELECT * FROM jobs WHERE 1=1", []
        if state:
            query += " AND state = ?"
            args.append(state)
        if provider:
            query += " AND provider = ?"
            args.append(provider)
        query += " ORDER BY created_at DESC LIMIT ?"
        return [_job(r) for r in self._db.execute(query, (*args, limit)).fetchall()]

    def unfinished(self) -> list[JobRecord]:
        """Jobs not yet in a terminal state: what start-up reconciliation looks at."""
        marks = ",".join("?" * len(TERMINAL))
        rows = self._db.execute(
            f"SELECT * FROM jobs WHERE state NOT IN ({marks}) ORDER BY created_at", tuple(TERMINAL)
        )
        return [_job(r) for r in rows.fetchall()]

    # events -------------------------------------------------------------------------------
    def add_event(
        self,
        job_id: str,
        kind: str,
        message: str,
        *,
        step: int | None = None,
        data: dict[str, Any] | None = None,
        remote_id: str | None = None,
        ts: float | None = None,
    ) -> int:
        """Append an event; one with a `remote_id` already recorded for the job is skipped
        (returns 0), so polling a provider's event list twice stores each event once."""
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO events (job_id, ts, kind, message, step, data_json, remote_id)"
                " VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING id",
                (job_id, ts or time.time(), kind, redact(message), step, _dump(data), remote_id),
            ).fetchall()  # read to the end: SQLite will not commit a statement still stepping
        return int(row[0][0]) if row else 0

    def events(self, job_id: str, after: int = 0) -> list[EventRecord]:
        rows = self._db.execute(
            "SELECT * FROM events WHERE job_id = ? AND id > ? ORDER BY id", (job_id, after)
        )
        return [
            EventRecord(
                r["id"],
                r["job_id"],
                r["ts"],
                r["kind"],
                r["message"],
                r["step"],
                _load(r["data_json"]),
            )
            for r in rows.fetchall()
        ]

    # artifacts and deployments ----------------------------------------------------------------
    def add_artifact(
        self,
        job_id: str | None,
        kind: str,
        uri: str,
        *,
        sha256: str | None = None,
        size: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> str:
        artifact_id = "art-" + uuid.uuid4().hex[:12]
        with self._tx() as db:
            db.execute(
                "INSERT INTO artifacts (id, job_id, kind, uri, sha256, bytes, created_at, meta_json)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (artifact_id, job_id, kind, uri, sha256, size, time.time(), _dump(meta)),
            )
        return artifact_id

    def artifacts(self, job_id: str | None = None) -> list[dict[str, Any]]:
        query = (
            "SELECT * FROM artifacts"
            + (" WHERE job_id = ?" if job_id else "")
            + " ORDER BY created_at"
        )
        rows = self._db.execute(query, (job_id,) if job_id else ()).fetchall()
        return [{**dict(r), "meta": _load(r["meta_json"])} for r in rows]

    def artifact(self, artifact_id: str) -> dict[str, Any] | None:
        """One artifact by id (None when there is none), without reading them all."""
        row = self._db.execute("SELECT * FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        return {**dict(row), "meta": _load(row["meta_json"])} if row else None

    def add_deployment(
        self,
        artifact_id: str | None,
        target: str,
        name: str,
        *,
        endpoint: str | None = None,
        state: str = "pending",
        meta: dict[str, Any] | None = None,
    ) -> str:
        deployment_id = "dep-" + uuid.uuid4().hex[:12]
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO deployments (id, artifact_id, target, name, endpoint, state, created_at, updated_at,"
                " meta_json) VALUES (?,?,?,?,?,?,?,?,?)",
                (deployment_id, artifact_id, target, name, endpoint, state, now, now, _dump(meta)),
            )
        return deployment_id

    def update_deployment(
        self,
        deployment_id: str,
        *,
        state: str | None = None,
        endpoint: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE deployments SET state = COALESCE(?, state), endpoint = COALESCE(?, endpoint),"
                " meta_json = COALESCE(?, meta_json), updated_at = ? WHERE id = ?",
                (state, endpoint, _dump(meta), time.time(), deployment_id),
            )

    def deployments(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM deployments ORDER BY created_at").fetchall()
        return [{**dict(r), "meta": _load(r["meta_json"])} for r in rows]

    # eval reports -------------------------------------------------------------------------
    def add_eval(
        self,
        report_id: str,
        kind: str,
        target: str,
        path: str,
        *,
        job_id: str | None = None,
        verdict: str | None = None,
        summary: dict[str, Any] | None = None,
    ) -> None:
        """One stored eval report (task, regress, compare, export gate), linked to its job."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO evals (id, job_id, kind, target, verdict, summary_json, path,"
                " created_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET"
                " job_id = excluded.job_id, kind = excluded.kind, target = excluded.target,"
                " verdict = excluded.verdict, summary_json = excluded.summary_json,"
                " path = excluded.path, created_at = excluded.created_at",
                (report_id, job_id, kind, target, verdict, _dump(summary), path, time.time()),
            )

    def evals(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """Eval reports, oldest first; one job's, or all."""
        query = "SELECT * FROM evals" + (" WHERE job_id = ?" if job_id else "")
        rows = self._db.execute(query + " ORDER BY created_at", (job_id,) if job_id else ())
        return [{**dict(r), "summary": _load(r["summary_json"])} for r in rows.fetchall()]


def _job(row: Any) -> JobRecord:
    return JobRecord(
        row["id"],
        row["provider"],
        row["kind"],
        row["state"],
        row["idempotency_key"],
        row["remote_id"],
        row["name"],
        row["base_model"],
        _load(row["spec_json"]),
        _load(row["offer_json"]),
        _load(row["estimate_json"]),
        _load(row["actual_json"]),
        row["error"],
        row["created_at"],
        row["updated_at"],
        row["finished_at"],
        _load(row["remote_json"]),
    )
