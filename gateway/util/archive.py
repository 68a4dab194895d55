"""Unpacking downloaded model archives without trusting them.

A provider's archive (zstd or gzip tar) is streamed member by member into a temporary directory
beside the target and renamed into place only when every member passed: no absolute paths, no
`..`, no links that leave the target, no devices, and size limits per member, in total and on the
member count. Memory stays bounded by the stream buffers.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gateway.errors import ArchiveError

_ZSTD = b"\x28\xb5\x2f\xfd"
_GZIP = b"\x1f\x8b"


@dataclass(frozen=True)
class Limits:
    member_bytes: int = 200 * 1024**3
    total_bytes: int = 400 * 1024**3
    members: int = 100_000


def _safe_name(name: str, archive: Path) -> str:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"member {name!r} has an absolute path", where=str(archive))
    norm = posixpath.normpath(name.replace("\\", "/"))
    if norm == ".." or norm.startswith("../") or "/../" in f"/{norm}/":
        raise ArchiveError(
            f"member {name!r} climbs out of the target with '..'", where=str(archive)
        )
    return norm


def _check(member: tarfile.TarInfo, archive: Path, seen: dict[str, int], limits: Limits) -> None:
    name = _safe_name(member.name, archive)
    seen["members"] += 1
    if seen["members"] > limits.members:
        raise ArchiveError(f"more than {limits.members:,} members", where=str(archive))
    if member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise ArchiveError(
                f"link {name!r} -> {member.linkname!r} points outside the target",
                where=str(archive),
            )
    elif not (member.isfile() or member.isdir()):
        raise ArchiveError(f"member {name!r} is a device or fifo", where=str(archive))
    if member.size > limits.member_bytes:
        raise ArchiveError(
            f"member {name!r} is {member.size:,} bytes, over the {limits.member_bytes:,} limit",
            where=str(archive),
        )
    seen["bytes"] += member.size
    if seen["bytes"] > limits.total_bytes:
        raise ArchiveError(
            f"archive unpacks to over {limits.total_bytes:,} bytes", where=str(archive)
        )


def _open_stream(fh: IO[bytes], archive: Path) -> tarfile.TarFile:
    head = fh.read(4)
    fh.seek(0)
    if head.startswith(_ZSTD):
        try:
            import zstandard
        except ImportError:
            raise ArchiveError(
                "the archive is zstd-compressed and the zstandard package is missing",
                where=str(archive),
                fix="pip install 'tunegate[together]'",
            ) from None
        reader = zstandard.ZstdDecompressor().stream_reader(fh)
        return tarfile.open(fileobj=reader, mode="r|")
    return tarfile.open(fileobj=fh, mode="r|gz" if head.startswith(_GZIP) else "r|")


def safe_extract(archive: Path, dest: Path, limits: Limits | None = None) -> list[str]:
    """Unpack `archive` into `dest` (which must not exist yet); returns the member names."""
    archive, dest = Path(archive), Path(dest)
    limits = limits or Limits()
    if dest.exists():
        raise ArchiveError(f"{dest} already exists", fix="remove it or choose another directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    seen = {"members": 0, "bytes": 0}
    names: list[str] = []
    try:
        with archive.open("rb") as fh, _open_stream(fh, archive) as tar:
            for member in tar:
                _check(member, archive, seen, limits)
                tar.extract(member, tmp, set_attrs=False, filter="data")
                names.append(_safe_name(member.name, archive))
        os.replace(tmp, dest)
    except ArchiveError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as exc:  # tar, gzip and zstd errors: a corrupt or truncated archive
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArchiveError(f"cannot unpack: {exc}", where=str(archive)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return names
