"""What the server keeps in the journal: one usage row per request, API keys (hashed), aliases.

Its own SQLite connection on the journal's file (WAL lets the CLI read while the server
writes); the `Journal` opened first applies the migrations. Every method takes the lock, so
the request path and the usage writer thread can share one store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ServeError
from gateway.journal import Journal
from gateway.journal.db import open_database

KEY_PREFIX = "tgk_"


@dataclass(frozen=True)
class UsageRecord:
    """One request through the gateway, as metered."""

    request_id: str
    ts: float
    model: str  # as the client asked
    route: str  # chat | completions
    status: int
    latency_ms: float
    deployment_id: str | None = None  # the deployment that answered (or failed last)
    target: str | None = None
    key_id: str | None = None
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False  # token counts estimated (a stream without a usage chunk)
    cost_usd: float | None = None  # per-token routes; hourly routes are amortized in reports
    fallback_from: str | None = None  # deployments that failed first, comma-joined
    error: str | None = None
    prompt_json: str | None = None  # only with prompt logging on
    experiment_id: str | None = None  # the A/B experiment on the alias asked for, if any
    arm: str | None = None  # incumbent | candidate: the arm the request was assigned

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "prompt_json"}


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str  # the first characters, to recognise a key without storing it
    monthly_budget_usd: float | None
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "active": self.active}


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_COLUMNS = tuple(UsageRecord.__dataclass_fields__)


class ServeStore:
    """Usage, keys and aliases in the journal's database."""

    def __init__(self, path: Path | str | None = None):
        with Journal(path) as journal:  # creates the file and applies migrations
            self.path = journal.path
        self.db = open_database(self.path, threads=True)
        # one SQLite connection is shared by the request path and the usage writer, so its
        # users take turns; PostgreSQL's pool gives each its own connection
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.db.dialect == "sqlite" else contextlib.nullcontext()
        )

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> ServeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        with self.transaction() as db:
            db.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """One write transaction, holding the store's lock: for changes that must not be
        seen half made (an experiment's end and its alias)."""
        with self._lock, self.db.transaction() as db:
            yield db

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    # usage --------------------------------------------------------------------------------
    def add_usage(self, records: list[UsageRecord]) -> None:
        """Write a batch in one transaction; a request id already written is skipped."""
        marks = ",".join("?" * len(_COLUMNS))
        self._write(
            f"INSERT INTO usage ({','.join(_COLUMNS)}) VALUES ({marks}) ON CONFLICT DO NOTHING",
            [tuple(getattr(r, c) for c in _COLUMNS) for r in records],
        )

    def usage(
        self,
        *,
        since: float = 0.0,
        deployment_ids: Iterable[str] | None = None,
        key_id: str | None = None,
        experiment_id: str | None = None,
    ) -> list[UsageRecord]:
        query, args = "SELECT * FROM usage WHERE ts >= ?", [since]
        if experiment_id:
            query += " AND experiment_id = ?"
            args.append(experiment_id)
        if deployment_ids is not None:
            ids = list(deployment_ids)
            query += f" AND deployment_id IN ({','.join('?' * len(ids))})"
            args += ids
        if key_id:
            query += " AND key_id = ?"
            args.append(key_id)
        rows = self._read(query + " ORDER BY ts", tuple(args))
        return [
            UsageRecord(
                **{c: (bool(r[c]) if c in ("stream", "estimated") else r[c]) for c in _COLUMNS}
            )
            for r in rows
        ]

    def missing_usage(self, request_ids: list[str]) -> set[str]:
        """The request ids among these that have no usage row."""
        have: set[str] = set()
        for i in range(0, len(request_ids), 500):
            chunk = request_ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT request_id FROM usage WHERE request_id IN ({marks})", tuple(chunk)
            )
            have.update(r["request_id"] for r in rows)
        return set(request_ids) - have

    def spend_since(self, since: float, upto_id: int | None = None) -> dict[str, float]:
        """Metered spend per key since `since` (a day boundary: budgets start on the 1st),
        rolled-up days included; with `upto_id`, only rows up to that id."""
        spend: dict[str, float] = {}
        rows = self._read(
            "SELECT key_id, SUM(cost_usd) AS usd FROM usage WHERE ts >= ? AND key_id IS NOT NULL"
            " AND id <= ? GROUP BY key_id",
            (since, 2**62 if upto_id is None else upto_id),
        ) + self._read(
            "SELECT key_id, SUM(cost_usd) AS usd FROM usage_daily WHERE day >= ? AND key_id != ''"
            " GROUP BY key_id",
            (since,),
        )
        for r in rows:
            spend[r["key_id"]] = spend.get(r["key_id"], 0.0) + float(r["usd"] or 0.0)
        return spend

    def last_usage_id(self) -> int:
        """The newest usage row's id. Writers take turns (one write transaction at a time on
        either store), so every row at or below it is committed: a safe place to resume."""
        return int(self._read("SELECT MAX(id) FROM usage")[0][0] or 0)

    def spend_after(self, since: float, after_id: int, upto_id: int) -> dict[str, float]:
        """Spend per key of the rows after `after_id` up to `upto_id`: what every replica
        metered since this one last looked (the shared budget's refresh)."""
        rows = self._read(
            "SELECT key_id, SUM(cost_usd) AS usd FROM usage WHERE id > ? AND id <= ?"
            " AND ts >= ? AND key_id IS NOT NULL GROUP BY key_id",
            (after_id, upto_id, since),
        )
        return {r["key_id"]: float(r["usd"] or 0.0) for r in rows}

    # keys ---------------------------------------------------------------------------------
    def create_key(self, name: str, monthly_budget_usd: float | None = None) -> tuple[ApiKey, str]:
        """A new key; the secret is returned once and only its SHA-256 is stored."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            "key-" + uuid.uuid4().hex[:10], name, secret[:12], monthly_budget_usd, time.time(), None
        )
        self._write(
            "INSERT INTO api_keys (id, name, prefix, sha256, monthly_budget_usd, created_at)"
            " VALUES (?,?,?,?,?,?)",
            [(key.id, name, key.prefix, key_hash(secret), monthly_budget_usd, key.created_at)],
        )
        return key, secret

    def keys(self, *, all: bool = False) -> list[ApiKey]:
        rows = self._read("SELECT * FROM api_keys ORDER BY created_at")
        found = [
            ApiKey(
                r["id"],
                r["name"],
                r["prefix"],
                r["monthly_budget_usd"],
                r["created_at"],
                r["revoked_at"],
            )
            for r in rows
        ]
        return [k for k in found if all or k.active]

    def key_hashes(self) -> dict[str, ApiKey]:
        """sha256 -> active key: what the server checks bearer tokens against."""
        by_id = {k.id: k for k in self.keys()}
        rows = self._read("SELECT id, sha256 FROM api_keys WHERE revoked_at IS NULL")
        return {r["sha256"]: by_id[r["id"]] for r in rows if r["id"] in by_id}

    def revoke_key(self, ref: str) -> ApiKey:
        """Revoke by id, name or prefix; revoking twice is fine."""
        key = self._one_key(ref)
        if key.active:
            self._write("UPDATE api_keys SET revoked_at = ? WHERE id = ?", [(time.time(), key.id)])
        return self._one_key(key.id)

    def set_budget(self, ref: str, monthly_budget_usd: float | None) -> ApiKey:
        """Change a key's monthly budget (None: no budget)."""
        key = self._one_key(ref)
        self._write(
            "UPDATE api_keys SET monthly_budget_usd = ? WHERE id = ?",
            [(monthly_budget_usd, key.id)],
        )
        return self._one_key(key.id)

    def _one_key(self, ref: str) -> ApiKey:
        found = [k for k in self.keys(all=True) if ref in (k.id, k.name) or k.prefix == ref]
        if not found:
            raise ServeError(f"no API key '{ref}'", fix="`tunegate keys list` shows them")
        if len(found) > 1:
            raise ServeError(f"'{ref}' names more than one key", fix="give the key's id")
        return found[0]

    # aliases ------------------------------------------------------------------------------
    def set_alias(self, name: str, targets: list[str]) -> None:
        """NAME -> deployments in fallback order; each must exist now, not 404 later."""
        from gateway.journal.deployments import get_deployment

        with Journal(self.path) as journal:
            for ref in targets:
                get_deployment(ref, journal)
        self._write(
            "INSERT INTO aliases (name, targets_json, updated_at) VALUES (?,?,?)"
            " ON CONFLICT(name) DO UPDATE SET targets_json = excluded.targets_json,"
            " updated_at = excluded.updated_at",
            [(name, json.dumps(targets), time.time())],
        )

    def remove_alias(self, name: str) -> bool:
        before = self.aliases()
        self._write("DELETE FROM aliases WHERE name = ?", [(name,)])
        return name in before

    def aliases(self) -> dict[str, list[str]]:
        rows = self._read("SELECT name, targets_json FROM aliases ORDER BY name")
        return {r["name"]: json.loads(r["targets_json"]) for r in rows}
