"""What both stores share: the URL test, a safe way to print a store's address, and the
migration bookkeeping (split statements, refuse a newer schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.errors import JournalError

URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def safe_where(target: Path | str) -> str:
    """The store's address as it may be printed: a URL's password is replaced by ***."""
    text = str(target)
    if not is_url(text):
        return text
    scheme, _, rest = text.partition("://")
    auth, at, host = rest.rpartition("@")
    if at and ":" in auth:
        auth = auth.split(":", 1)[0] + ":***"
    return f"{scheme}://{auth}{at}{host}"


def statements(sql: str) -> list[str]:
    return [s for s in sql.split(";") if s.strip()]


def check_version(db: Any, migrations: list[tuple[int, str]]) -> int:
    """The store's schema version, refused when a newer tunegate wrote it."""
    current, known = db.version(), migrations[-1][0]
    if current > known:
        raise JournalError(
            f"the journal is at schema version {current}, newer than this tunegate knows ({known})",
            where=db.where,
            fix="upgrade tunegate",
        )
    return current
