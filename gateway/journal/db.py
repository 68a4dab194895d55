"""Where the journal lives: one seam, two databases.

SQLite under $TUNEGATE_HOME is the default and stays the right answer for one machine. A team
that runs several `tunegate serve` replicas points them all at one PostgreSQL
(`TUNEGATE_STORE=postgresql://...`, `tunegate serve --store ...`), so budgets, aliases,
experiments and fine-tuning creates are shared rather than kept N times over.

The SQL the journal writes is the common dialect of both (`?` placeholders, `ON CONFLICT`,
`RETURNING`); the PostgreSQL side rewrites placeholders and the migrations' column types, so
there is one schema definition. Transactions keep SQLite's meaning on both: one writer at a
time (`BEGIN IMMEDIATE` there, a transaction-scoped advisory lock here), which is what the
compare-and-set code in the journal was written against.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from gateway.catalog import tunegate_home
from gateway.errors import JournalError
from gateway.journal.sql import check_version, is_url, statements


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Database(Protocol):
    """What the journal needs of a database: statements, transactions, its schema version."""

    dialect: str  # sqlite | postgresql
    where: str  # a path or a URL without its password: for messages, never a secret
    integrity_errors: tuple[type[BaseException], ...]

    def execute(self, sql: str, args: Iterable[Any] = ()) -> Cursor: ...
    def transaction(self) -> Any: ...  # a context manager yielding something with execute()
    def migrate(self, migrations: list[tuple[int, str]]) -> None: ...
    def version(self) -> int: ...
    def close(self) -> None: ...


def default_target() -> str | Path:
    """`TUNEGATE_STORE` or the config's `serve.store` when set (a PostgreSQL URL or a file),
    else the journal file under TUNEGATE_HOME."""
    if os.environ.get("TUNEGATE_STORE"):
        return os.environ["TUNEGATE_STORE"]
    store = _configured_store()
    return store or tunegate_home() / "journal.db"


_CONFIGURED: dict[tuple[str, int], str | None] = {}


def _configured_store() -> str | None:
    """`serve.store` of the config file, read again only when the file changes: the journal
    is opened often (a gateway's registry every few seconds), the config rarely edited."""
    from gateway.catalog.config import config_path, load_config

    path = config_path()
    try:
        stamp = (str(path), path.stat().st_mtime_ns)
    except OSError:
        return None
    if stamp not in _CONFIGURED:
        _CONFIGURED.clear()
        _CONFIGURED[stamp] = load_config().serve.store
    return _CONFIGURED[stamp]


def resolve(target: Path | str | None) -> Path | str:
    """A store URL as given, or the journal file's path."""
    if target is None or target == "":
        target = default_target()
    return target if is_url(target) else Path(target)


def local_dir(target: Path | str) -> Path:
    """The folder beside the store for files that stay on this machine (job leases)."""
    return tunegate_home() if is_url(target) else Path(target).parent


def open_database(target: Path | str | None = None, *, threads: bool = False) -> Database:
    """The journal's database at `target` (a path or a PostgreSQL URL), migrations applied by
    the caller. `threads`: the connection is shared by threads (the caller serializes)."""
    where = resolve(target)
    if is_url(where):
        from gateway.journal.postgres import PostgresDatabase

        return PostgresDatabase(str(where))
    return SqliteDatabase(Path(where), threads=threads)


class SqliteDatabase:
    """One SQLite connection in autocommit mode; WAL lets readers run beside the writer."""

    dialect = "sqlite"
    integrity_errors: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)

    def __init__(self, path: Path, *, threads: bool = False):
        self.path = path
        self.where = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=not threads
            )
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(
                f"cannot open the journal: {exc}",
                where=str(path),
                fix="set TUNEGATE_HOME to a writable directory",
            ) from None
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")

    def execute(self, sql: str, args: Iterable[Any] = ()) -> Cursor:
        return self._db.execute(sql, tuple(args))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: other writers wait), committed when the
        block ends, rolled back when it raises."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, migrations: list[tuple[int, str]]) -> None:
        current = check_version(self, migrations)
        for version, sql in migrations:
            if version <= current:
                continue
            with self.transaction() as db:
                if int(db.execute("PRAGMA user_version").fetchone()[0]) >= version:
                    continue  # another process applied it while we waited
                for statement in statements(sql):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version}")

    def close(self) -> None:
        self._db.close()
