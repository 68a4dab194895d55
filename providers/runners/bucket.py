"""A rented job's folder in a bucket: what tunegate writes before launch (the converted data,
spec.json) and reads while and after the job runs (status.json, metrics.jsonl, the adapter).

On clouds that mount a bucket the same folder is mounted at JOBDIR on the rented machine
(SkyPilot `file_mounts`), so the worker writes exactly what it writes locally and a preempted
machine's successor finds the checkpoints. On clouds that cannot (RunPod, Vast), JOBDIR is a
plain folder there and `providers.runners.bucket_sync` keeps it in this one through the
object-store API. S3 and S3-compatible stores (R2, MinIO: `AWS_ENDPOINT_URL`) through boto3,
with credentials from its usual chain.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gateway.errors import ProviderError
from providers.s3 import parse_s3_uri

# where the bucket is mounted on a rented machine: whole (SkyPilot mounts a bucket, not a folder
# in one: a sub-path source fails its prechecks, "MOUNT mode does not support mounting specific
# files"); JOBDIR is the job's folder inside it
MOUNT = "/tunegate-bucket"


class JobBucket:
    """`s3://bucket/prefix/JOB-ID/`: one job's folder."""

    def __init__(self, uri: str, job_id: str):
        self.root = uri.rstrip("/")
        self.bucket, prefix = parse_s3_uri(uri)
        self.prefix = f"{prefix}/{job_id}".strip("/")
        self.uri = f"s3://{self.bucket}/{self.prefix}"
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from gateway.catalog.extras import require

            require("boto3", what="rented jobs' files in S3")
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def put(self, name: str, path: Path) -> None:
        try:
            self.client.upload_file(str(path), self.bucket, self._key(name))
        except Exception as exc:  # botocore's errors, without credentials in them
            raise ProviderError(f"cannot write {self.uri}/{name}: {exc}") from None

    def read(self, name: str) -> bytes | None:
        """A small file's bytes, or None when it is not there (yet)."""
        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey"):
                return None
            raise ProviderError(f"cannot read {self.uri}/{name}: {exc}") from None
        return bytes(got["Body"].read())

    def names(self, sub: str = "") -> list[str]:
        """Every file under `sub/`, relative to the job's folder."""
        base = self._key(sub).rstrip("/") + "/" if sub else self.prefix + "/"
        out: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base
        )
        for page in pages:
            out += [o["Key"][len(self.prefix) + 1 :] for o in page.get("Contents", [])]
        return out

    @classmethod
    def at(cls, uri: str) -> JobBucket:
        """The job folder `s3://bucket/prefix/JOB-ID` itself."""
        root, _, job_id = uri.rstrip("/").rpartition("/")
        return cls(root, job_id)

    def delete(self, names: list[str]) -> None:
        """Remove these files (relative to the job's folder), a thousand per request."""
        for i in range(0, len(names), 1000):
            chunk = [{"Key": self._key(n)} for n in names[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk})

    def download(self, sub: str, dest: Path) -> int:
        """Copy the folder `sub` to `dest` (a partial name, renamed when complete)."""
        names = self.names(sub)
        if not names:
            return 0
        part = dest.with_name(dest.name + ".partial")
        for name in names:
            target = part / Path(name).relative_to(sub)
            target.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.bucket, self._key(name), str(target))
        if dest.exists():
            import shutil

            shutil.rmtree(dest)
        part.rename(dest)
        return len(names)


def storage_secrets() -> dict[str, str]:
    """The object store's credentials for a machine that syncs the folder itself: boto3's
    resolved chain here (keys, session token, region, an S3-compatible endpoint), handed to
    SkyPilot as task secrets, which it keeps out of its logs and dashboards."""
    import boto3

    session = boto3.Session()
    creds = session.get_credentials()
    if creds is None:
        raise ProviderError(
            "no credentials for the job's bucket: a machine that cannot mount it writes the "
            "job's folder through the S3 API",
            fix="aws configure (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
        )
    frozen = creds.get_frozen_credentials()
    out = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
    if frozen.token:
        out["AWS_SESSION_TOKEN"] = frozen.token
    if session.region_name:
        out["AWS_DEFAULT_REGION"] = session.region_name
    if os.environ.get("AWS_ENDPOINT_URL"):
        out["AWS_ENDPOINT_URL"] = os.environ["AWS_ENDPOINT_URL"]
    return out
