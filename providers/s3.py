"""Uploading a file to S3 and proving the object is that file.

Large files go up in parts (boto3's transfer manager); every part carries a SHA-256 that S3
checks on receipt, and afterwards the object's own checksum is compared with one computed here
over the same part boundaries. An object that already holds these exact bytes (a retried
launch) is not uploaded again.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ProviderError, SpecError

MIN_PART = 5 * 1024**2  # S3's smallest part (all but the last)
MAX_PARTS = 10_000


@dataclass(frozen=True)
class S3Object:
    uri: str
    bytes: int
    sha256: str  # hex, of the whole file
    checksum: str  # S3's ChecksumSHA256: base64, composite over parts for multipart objects
    parts: int


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix without a trailing slash) from s3://bucket/prefix."""
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri or "")
    if not match:
        raise SpecError(f"not an S3 URI: {uri!r}", fix="use s3://bucket/prefix")
    return match.group(1), match.group(2).strip("/")


def part_size(size: int) -> int:
    """The part size boto3 will use: `TUNEGATE_S3_PART_MB` (default 8), at least 5 MiB, doubled
    until the file fits in 10,000 parts (what s3transfer's ChunksizeAdjuster does)."""
    chunk = max(MIN_PART, int(float(os.environ.get("TUNEGATE_S3_PART_MB", "8")) * 1024**2))
    while size > chunk * MAX_PARTS:
        chunk *= 2
    return chunk


def _checksums(path: Path, chunk: int) -> tuple[str, str, int]:
    """(sha256 hex of the file, S3 checksum base64, parts) in one pass."""
    whole, part_digests, size = hashlib.sha256(), [], path.stat().st_size
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            whole.update(block)
            part_digests.append(hashlib.sha256(block).digest())
    if size < chunk or len(part_digests) <= 1:  # a single PUT: the plain file checksum
        return whole.hexdigest(), base64.b64encode(whole.digest()).decode(), 1
    composite = hashlib.sha256(b"".join(part_digests)).digest()
    return whole.hexdigest(), base64.b64encode(composite).decode(), len(part_digests)


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _matches(head: dict[str, Any] | None, size: int, checksum: str) -> bool:
    if head is None or head.get("ContentLength") != size:
        return False
    remote = str(head.get("ChecksumSHA256") or "")
    return remote.split("-")[0] == checksum  # S3 appends "-<parts>" to composite checksums


def upload_verified(
    s3: Any,
    path: Path,
    uri: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> S3Object:
    """Upload `path` to `uri` (s3://bucket/key) unless it is already there; verify either way."""
    from boto3.s3.transfer import TransferConfig

    bucket, key = parse_s3_uri(uri)
    size = path.stat().st_size
    chunk = part_size(size)
    sha, checksum, parts = _checksums(path, chunk)
    if not _matches(_head(s3, bucket, key), size, checksum):
        s3.upload_file(
            str(path),
            bucket,
            key,
            ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": sha}},
            Config=TransferConfig(
                multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=4
            ),
            Callback=progress,
        )
        head = _head(s3, bucket, key)
        if not _matches(head, size, checksum):
            got = (head or {}).get("ChecksumSHA256"), (head or {}).get("ContentLength")
            raise ProviderError(
                f"S3 object {uri} does not match {path.name} after upload "
                f"(checksum {got[0]}, {got[1]} bytes; expected {checksum}, {size} bytes)",
                fix="run the launch again: the upload is repeated and checked again",
            )
    return S3Object(uri, size, sha, checksum, parts)
