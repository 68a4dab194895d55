"""The journal on PostgreSQL: psycopg 3, with a small pool of connections per URL and process.

Statements arrive in the journal's dialect (`?` placeholders); they are rewritten once and
cached. Migrations are the SQLite ones with PostgreSQL's column types, applied under an
advisory lock so replicas starting together apply each exactly once. Every transaction takes
one transaction-scoped advisory lock first: writers queue as they do on SQLite, so the
journal's read-then-write code means the same on both stores.
"""

from __future__ import annotations

import atexit
import functools
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from gateway.catalog.extras import require
from gateway.errors import JournalError
from gateway.journal.sql import check_version, safe_where, statements

WRITER_LOCK = 0x7475_6E65  # "tune": the advisory lock every write transaction holds
MIGRATION_LOCK = WRITER_LOCK + 1
POOL_MAX = 8  # idle connections kept per URL and process
CONNECT_S = 5  # a new connection's timeout: how long a statement waits for a store away

_POOLS: dict[str, _Pool] = {}
_POOLS_LOCK = threading.Lock()


class Row(tuple):
    """A result row read by position or by column name, like sqlite3.Row."""

    def __new__(cls, values: Iterable[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names  # type: ignore[attr-defined]
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])  # type: ignore[attr-defined]
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)  # type: ignore[attr-defined]


class Result:
    """A statement's rows, read before its connection goes back to the pool."""

    def __init__(self, rows: list[Row], rowcount: int):
        self._rows, self.rowcount = rows, rowcount

    def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Row]:
        return self._rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows)


@functools.lru_cache(maxsize=1024)
def to_postgres(sql: str) -> str:
    """`?` placeholders become `%s` and a literal `%` is doubled, outside quoted strings."""
    out, quote = [], ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
            out.append("%%" if ch == "%" else ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        else:
            out.append("%%" if ch == "%" else ch)
    return "".join(out)


_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b", re.I), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
)


def postgres_ddl(sql: str) -> str:
    """A migration written for SQLite, with PostgreSQL's column types."""
    for pattern, replacement in _TYPES:
        sql = pattern.sub(replacement, sql)
    return sql


def _args(args: Iterable[Any]) -> tuple[Any, ...]:
    # flags are INTEGER columns in the one schema; psycopg would send a boolean
    return tuple(int(a) if isinstance(a, bool) else a for a in args)


def _row_factory(cursor: Any) -> Any:
    names = {c.name: i for i, c in enumerate(cursor.description or ())}
    return lambda values: Row(values, names)


def _configure(conn: Any) -> None:
    from psycopg.adapt import Loader

    class NumberLoader(Loader):
        """SUM over BIGINT is NUMERIC: an int when whole, else a float (never a Decimal)."""

        def load(self, data: Any) -> Any:
            text = bytes(data).decode()
            return float(text) if any(c in text for c in ".eEN") else int(text)

    conn.adapters.register_loader("numeric", NumberLoader)


class _Pool:
    """Connections kept open between statements, at most POOL_MAX idle. A connection is made
    when none is idle (connect timeout CONNECT_S) and dropped when it comes back broken, so a
    store that went away is reached again by the next statement once it is back: no backoff
    of the pool's own stands between the meter's retry and the restarted server."""

    def __init__(self, url: str):
        self.url = url
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(
            self.url, autocommit=True, row_factory=_row_factory, connect_timeout=CONNECT_S
        )
        _configure(conn)
        return conn

    @contextmanager
    def connection(self) -> Iterator[Any]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            if conn.closed or conn.broken or conn.info.transaction_status != 0:  # not IDLE
                conn.close()
            else:
                with self._lock:
                    keep = len(self._idle) < POOL_MAX
                    if keep:
                        self._idle.append(conn)
                if not keep:
                    conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _pool(url: str) -> _Pool:
    with _POOLS_LOCK:
        if url not in _POOLS:
            require("psycopg", what="a PostgreSQL store")
            pool = _Pool(url)
            try:
                with pool.connection() as conn:
                    conn.execute("SELECT 1")
            except Exception as exc:
                raise JournalError(
                    f"cannot reach the PostgreSQL store: {str(exc).splitlines()[0]}",
                    where=safe_where(url),
                    fix="check the URL, that the server runs and that the database exists",
                ) from None
            _POOLS[url] = pool
        return _POOLS[url]


@atexit.register
def _close_pools() -> None:
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()


class _Tx:
    """One connection inside a transaction, speaking the journal's dialect."""

    def __init__(self, conn: Any):
        self._conn = conn

    def execute(self, sql: str, args: Iterable[Any] = ()) -> Result:
        cur = self._conn.execute(to_postgres(sql), _args(args))
        rows = cur.fetchall() if cur.description else []
        return Result(rows, cur.rowcount)

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        batch = [_args(r) for r in rows]
        if batch:
            self._conn.cursor().executemany(to_postgres(sql), batch)


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, url: str):
        self.url = url
        self.where = safe_where(url)
        self._pool = _pool(url)  # says which extra is missing before psycopg is imported
        import psycopg

        self.integrity_errors: tuple[type[BaseException], ...] = (psycopg.IntegrityError,)

    def execute(self, sql: str, args: Iterable[Any] = ()) -> Result:
        with self._pool.connection() as conn:
            return _Tx(conn).execute(sql, args)

    @contextmanager
    def transaction(self, lock: int = WRITER_LOCK) -> Iterator[_Tx]:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            yield _Tx(conn)

    def version(self) -> int:
        import psycopg

        try:
            row = self.execute("SELECT MAX(version) FROM tunegate_schema").fetchone()
        except psycopg.errors.UndefinedTable:  # a new database: made under the lock, once
            with self.transaction(MIGRATION_LOCK) as tx:
                tx.execute("CREATE TABLE IF NOT EXISTS tunegate_schema (version BIGINT NOT NULL)")
            return 0
        return int(row[0] or 0) if row else 0

    def migrate(self, migrations: list[tuple[int, str]]) -> None:
        current = check_version(self, migrations)
        if current == migrations[-1][0]:
            return
        with self.transaction(MIGRATION_LOCK) as tx:
            row = tx.execute("SELECT MAX(version) FROM tunegate_schema").fetchone()
            current = int(row[0] or 0) if row else 0  # another replica may have gone first
            for version, sql in migrations:
                if version <= current:
                    continue
                for statement in statements(postgres_ddl(sql)):
                    tx.execute(statement)
                tx.execute("INSERT INTO tunegate_schema (version) VALUES (?)", (version,))

    def close(self) -> None:
        """The pool is the process's, shared by every journal on this URL; it closes at exit."""
