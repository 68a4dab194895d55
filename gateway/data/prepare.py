"""Check a file and refuse it with its first errors, or convert it: the one gate every path
that sends data somewhere goes through (`tunegate data convert`, every backend's upload).

The user's file is only read; a converted copy is written where the caller says.
"""

from __future__ import annotations

from pathlib import Path

from gateway.data.formats import LoadedFile, load
from gateway.data.sharegpt import Mapping
from gateway.data.validate import check_file
from gateway.errors import SpecError

SHOWN = 10  # errors quoted in the refusal; `tunegate data check` lists them all


def load_clean(
    path: Path,
    *,
    provider: str | None = None,
    fmt: str | None = None,
    objective: str | None = None,
    mapping: Mapping | None = None,
) -> LoadedFile:
    """The file, loaded, if it has no errors (with `provider`, under its rules too; with
    `objective`, only the example kinds that objective trains on)."""
    path = Path(path)
    loaded = load(path, fmt, mapping=mapping)
    size = path.stat().st_size
    findings = check_file(loaded, provider=provider, file_bytes=size, objective=objective)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        flag = f" --provider {provider}" if provider else ""
        shown = "\n  ".join(f.format(str(path)) for f in errors[:SHOWN])
        more = len(errors) - SHOWN
        raise SpecError(
            f"{len(errors)} errors; fix them first (`tunegate data check {path}{flag}`):\n  {shown}"
            + (f"\n  ... and {more} more" if more > 0 else ""),
            where=str(path),
        )
    return loaded


def prepare(
    path: Path,
    target: str,
    dest: Path,
    *,
    provider: str | None = None,
    fmt: str | None = None,
    objective: str | None = None,
) -> Path:
    """`path` checked (refused with its errors) and written to `dest` in `target`'s format."""
    from gateway.data.convert import convert

    loaded = load_clean(path, provider=provider, fmt=fmt, objective=objective)
    convert(loaded.examples, target, dest)
    return dest
