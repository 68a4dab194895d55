"""What the fine-tuning API keeps in the journal (migration 4): uploaded files, and one row per
`POST /v1/fine_tuning/jobs` that tells a retried create from a new one.

A file's bytes are stored exactly as uploaded under `$TUNEGATE_HOME/serve/files/ID/`; tunegate
trains on that copy and never rewrites it. A create claims its row *before* launching, so a
retry that arrives while the first attempt is still launching finds the claim and waits for it.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from gateway.journal.serving import ServeStore

RETRY_WINDOW_S = 600.0  # a create with the same content and key within this is a retry


@dataclass(frozen=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    sha256: str
    path: Path
    status: str  # processed | error
    status_details: str | None
    created_at: float

    def to_api(self) -> dict[str, Any]:
        """The `FileObject` the official SDK parses."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "status_details": self.status_details,
            "expires_at": None,
        }


@dataclass(frozen=True)
class FtJob:
    """One create through the API, and what became of it."""

    seq: int
    request_key: str
    content_sha: str
    key_id: str | None
    job_id: str | None
    state: str  # launching | launched | launch_failed | deploying | deployed | deploy_failed
    request: dict[str, Any]
    deploy_to: str | None
    fine_tuned_model: str | None
    deployment_id: str | None
    result_file: str | None
    error: dict[str, Any] | None
    created_at: float


def content_sha(key_id: str | None, body: dict[str, Any]) -> str:
    canonical = json.dumps({"key": key_id, "body": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class FtStore(ServeStore):
    """The gateway's store, with the fine-tuning API's tables."""

    # files --------------------------------------------------------------------------------
    def add_file(
        self,
        filename: str,
        purpose: str,
        data: bytes | BinaryIO,
        folder: Path,
        status: str,
        details: str | None,
        key_id: str | None,
    ) -> StoredFile:
        """Copy `data` (bytes, or a file read in 1 MiB chunks) into the store as it is."""
        file_id = "file-" + uuid.uuid4().hex[:24]
        path = folder / file_id / (Path(filename).name or "upload.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        source = io.BytesIO(data) if isinstance(data, bytes) else data
        digest, size = hashlib.sha256(), 0
        with path.open("wb") as out:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        sha = digest.hexdigest()
        row = (file_id, filename, purpose, size, sha, str(path), status, details, key_id)
        self._write(
            "INSERT INTO files (id, filename, purpose, bytes, sha256, path, status,"
            " status_details, key_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(*row, time.time())],
        )
        found = self.file(file_id)
        assert found is not None
        return found

    def file(self, file_id: str) -> StoredFile | None:
        rows = self._read("SELECT * FROM files WHERE id = ? AND deleted_at IS NULL", (file_id,))
        return _file(rows[0]) if rows else None

    def files(self, purpose: str | None = None) -> list[StoredFile]:
        """Newest first."""
        sql = "SELECT * FROM files WHERE deleted_at IS NULL"
        args: tuple[Any, ...] = ()
        if purpose:
            sql, args = sql + " AND purpose = ?", (purpose,)
        return [_file(r) for r in self._read(sql + " ORDER BY created_at DESC, id DESC", args)]

    def delete_file(self, file_id: str) -> bool:
        found = self.file(file_id)
        if found is None:
            return False
        self._write("UPDATE files SET deleted_at = ? WHERE id = ?", [(time.time(), file_id)])
        found.path.unlink(missing_ok=True)
        return True

    # fine-tuning jobs ---------------------------------------------------------------------
    def claim(
        self,
        request_key: str,
        sha: str,
        key_id: str | None,
        body: dict[str, Any],
        deploy_to: str | None,
    ) -> FtJob | None:
        """Claim `request_key` for a new job; None if another create holds it already."""
        now = time.time()
        with self.transaction() as db:  # one writer at a time, on every replica of the store
            claimed = db.execute(
                "INSERT INTO ft_jobs (request_key, content_sha, key_id, state, request_json,"
                " deploy_to, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)"
                " ON CONFLICT (request_key) DO NOTHING RETURNING seq",
                (request_key, sha, key_id, "launching", json.dumps(body), deploy_to, now, now),
            ).fetchall()
        return self.ft_by_key(request_key) if claimed else None

    def ft_by_key(self, request_key: str) -> FtJob | None:
        rows = self._read("SELECT * FROM ft_jobs WHERE request_key = ?", (request_key,))
        return _ft(rows[0]) if rows else None

    def ft_by_content(self, sha: str, window_s: float = RETRY_WINDOW_S) -> FtJob | None:
        """The newest create with this content within the window that did not fail to launch."""
        rows = self._read(
            "SELECT * FROM ft_jobs WHERE content_sha = ? AND created_at >= ?"
            " AND state != 'launch_failed' ORDER BY seq DESC LIMIT 1",
            (sha, time.time() - window_s),
        )
        return _ft(rows[0]) if rows else None

    def ft_job(self, job_id: str) -> FtJob | None:
        rows = self._read("SELECT * FROM ft_jobs WHERE job_id = ?", (job_id,))
        return _ft(rows[0]) if rows else None

    def ft_jobs(self) -> list[FtJob]:
        """Every launched job, newest first."""
        rows = self._read("SELECT * FROM ft_jobs WHERE job_id IS NOT NULL ORDER BY seq DESC")
        return [_ft(r) for r in rows]

    def ft_update(self, request_key: str, *, expect: str | None = None, **fields: Any) -> bool:
        """Update a create's row; with `expect`, only if its state is still that (a compare
        and set, so only one thread starts the deployment)."""
        columns = {"error": "error_json"}
        values = {
            columns.get(k, k): (json.dumps(v) if k == "error" else v) for k, v in fields.items()
        }
        sets = ", ".join(f"{k} = ?" for k in values)
        sql = f"UPDATE ft_jobs SET {sets}, updated_at = ? WHERE request_key = ?"
        args: list[Any] = [*values.values(), time.time(), request_key]
        if expect is not None:
            sql, args = sql + " AND state = ?", [*args, expect]
        with self._lock:
            cur = self.db.execute(sql, args)
        return cur.rowcount > 0


def _file(row: Any) -> StoredFile:
    return StoredFile(
        row["id"],
        row["filename"],
        row["purpose"],
        row["bytes"],
        row["sha256"],
        Path(row["path"]),
        row["status"],
        row["status_details"],
        row["created_at"],
    )


def _ft(row: Any) -> FtJob:
    return FtJob(
        row["seq"],
        row["request_key"],
        row["content_sha"],
        row["key_id"],
        row["job_id"],
        row["state"],
        json.loads(row["request_json"]),
        row["deploy_to"],
        row["fine_tuned_model"],
        row["deployment_id"],
        row["result_file"],
        json.loads(row["error_json"]) if row["error_json"] else None,
        row["created_at"],
    )
