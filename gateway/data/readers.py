"""Reading a training file's records: JSONL, a JSON array, Parquet, without ever raising on bad
input. A file that is not what it claims (empty, compressed, an LFS pointer, pretty-printed JSON,
another encoding) gets one file-level diagnosis instead of an error per physical line.

Lines are 1-based; for a JSON array or Parquet file a record's line is its index + 1, for
pretty-printed JSON the line its object starts on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HEAD = 65536
PRETTY_MAX_BYTES = 256 * 1024 * 1024  # pretty-printed JSON is read whole; larger is only named
# Magic numbers of what people save under a .jsonl name by mistake (file(1)'s magic database).
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed", "gunzip -k FILE"),
    (b"PK\x03\x04", "a zip archive", "unzip FILE"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "zstd -d FILE"),
    (b"BZh", "bzip2-compressed", "bunzip2 -k FILE"),
    (b"\xfd7zXZ\x00", "xz-compressed", "unxz -k FILE"),
)
_LFS = b"version https://git-lfs.github.com/spec/"


@dataclass
class RawRecord:
    """One record as read, or the reason it could not be read.

    `code` groups errors of one cause: "file" (about the whole file), "bom" (the records are
    still read), "encoding" (collapsed into one finding by the validator), or None."""

    line: int
    data: Any = None
    error: str | None = None
    code: str | None = None


def container(path: Path) -> str:
    """How the file holds its records: "parquet", "json-array" or "jsonl" (by content, not name)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return "parquet"
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return "jsonl"
    return "json-array" if head.lstrip(b"\xef\xbb\xbf").lstrip().startswith(b"[") else "jsonl"


def diagnose(path: Path) -> str | None:
    """Why the whole file cannot be read as records, in one sentence, or None."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(_HEAD)
    except OSError as exc:
        return f"cannot read the file: {exc.strerror or exc} (expected a readable file)"
    if size == 0:
        return "file is empty (expected one JSON object per line)"
    if head.startswith(_LFS):
        return (
            "file is a Git LFS pointer, not the data (expected the real file: run `git lfs pull`)"
        )
    for magic, what, fix in _MAGIC:
        if head.startswith(magic):
            return f"file is {what} (expected plain UTF-8 JSONL: `{fix.replace('FILE', path.name)}` first)"
    is_parquet = path.suffix.lower() == ".parquet"
    if head.startswith(b"PAR1") and not is_parquet:
        return f"file is Parquet but named {path.suffix or 'without a suffix'} (expected the .parquet suffix)"
    if is_parquet:
        return None if head.startswith(b"PAR1") else _not_parquet(head)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or head[:4000].count(b"\x00") > 8:
        return (
            "file is UTF-16 or binary, not UTF-8 (expected UTF-8 text: "
            f"`iconv -f UTF-16 -t UTF-8 {path.name}`)"
        )
    if _blank(path, head, size):
        return "file has only whitespace (expected one JSON object per line)"
    return None


def _not_parquet(head: bytes) -> str:
    looks = "JSON" if head.lstrip().startswith((b"{", b"[")) else "something else"
    return f"file is named .parquet but is {looks} (no PAR1 magic; expected a Parquet file)"


def _blank(path: Path, head: bytes, size: int) -> bool:
    if head.strip():
        return False
    if size <= len(head):
        return True
    with path.open("rb") as fh:
        return not any(chunk.strip() for chunk in iter(lambda: fh.read(1 << 20), b""))


def read_records(path: Path) -> Iterator[RawRecord]:
    """Yield records with their line numbers; unreadable lines come back with an error."""
    path = Path(path)
    problem = diagnose(path)
    if problem:
        yield RawRecord(1, error=problem, code="file")
        return
    kind = container(path)
    if kind == "parquet":
        yield from _read_parquet(path)
    elif kind == "json-array":
        yield from _read_whole(path, array=True)
    else:
        yield from _read_lines(path)


def _bom(line: int = 1) -> RawRecord:
    return RawRecord(
        line,
        error="file starts with a UTF-8 byte-order mark (expected plain UTF-8 without BOM)",
        code="bom",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (expected a number or null)")


def parse_json(text: str) -> tuple[Any, str | None]:
    """(value, None) or (None, why it is not one JSON value); NaN and Infinity are refused
    (strict JSON parsers, the providers' among them, reject them)."""
    try:
        return json.loads(text, parse_constant=_reject_constant), None
    except RecursionError:
        return None, "JSON nested too deeply to read (expected at most a few hundred levels)"
    except json.JSONDecodeError as exc:
        msg = exc.msg.removesuffix(" at")  # "Invalid control character %r at"
        return None, f"invalid JSON: {msg} at column {exc.colno}"
    except ValueError as exc:
        return None, f"invalid JSON: {exc}"


def broken_unicode(data: Any) -> str | None:
    """Why `data` cannot be written as UTF-8 (a lone surrogate from a `\\ud800` escape), or None."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else ""
        code = f" (\\u{ord(bad[0]):04x})" if bad else ""
        return f"text holds a lone UTF-16 surrogate{code}, half of a broken pair (expected valid Unicode)"
    except (RecursionError, ValueError, TypeError):
        return None
    return None


def _read_lines(path: Path) -> Iterator[RawRecord]:
    first_bad: RawRecord | None = None
    seen_good = False
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                yield _bom()
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRecord(number, error=_not_utf8(raw, exc), code="encoding")
                continue
            data, error = parse_json(text)
            if error is None and b"\\u" in raw and (b"\\ud" in raw.lower()):
                error = broken_unicode(data)
            if error is not None and not seen_good and first_bad is None:
                first_bad = RawRecord(number, error=error)
                if data is None and raw.lstrip()[:1] in (b"{", b"["):  # not one whole value
                    pretty = list(_pretty(path))
                    if pretty:
                        yield from pretty
                        return
            seen_good = seen_good or error is None
            yield RawRecord(number, error=error) if error else RawRecord(number, data)


def _not_utf8(raw: bytes, exc: UnicodeDecodeError) -> str:
    guess = ""
    try:
        raw.decode("cp1252")
        guess = "; it reads as Windows-1252/Latin-1: `iconv -f cp1252 -t utf-8`"
    except UnicodeDecodeError:
        pass
    return f"not valid UTF-8 at byte {exc.start} (expected UTF-8 text{guess})"


def _pretty(path: Path) -> Iterator[RawRecord]:
    """A file of JSON objects spread over many lines: one diagnosis, then its objects (each
    numbered by the line it starts on), or nothing when it is not that."""
    if path.stat().st_size > PRETTY_MAX_BYTES:
        return
    try:
        text = path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError:
        return
    decoder, pos, found = json.JSONDecoder(parse_constant=_reject_constant), 0, []
    try:
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos >= len(text):
                break
            value, end = decoder.raw_decode(text, pos)
            found.append((text.count("\n", 0, pos) + 1, value))
            pos = end
    except (ValueError, RecursionError):
        return
    if not found or (len(found) == 1 and isinstance(found[0][1], list)):
        return
    if len(found) == sum(1 for line in text.splitlines() if line.strip()):
        return  # one object per line after all: JSONL whose first line has its own problem
    lines = text.count("\n") + 1
    yield RawRecord(
        1,
        error=f"file is pretty-printed JSON: {len(found)} object(s) over {lines} lines (expected "
        f"one JSON object per line: `jq -c . {path.name} > {path.stem}.jsonl`)",
        code="file",
    )
    for line, value in found:
        broken = broken_unicode(value) if "\\u" in text else None
        yield RawRecord(line, error=broken) if broken else RawRecord(line, value)


def _read_whole(path: Path, *, array: bool) -> Iterator[RawRecord]:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        yield _bom()
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        yield RawRecord(line, error=_not_utf8(raw, exc), code="file")
        return
    try:
        records = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        yield RawRecord(1, error="JSON nested too deeply to read", code="file")
        return
    except json.JSONDecodeError as exc:
        msg = exc.msg.removesuffix(" at")
        yield RawRecord(exc.lineno, error=f"invalid JSON array: {msg}", code="file")
        return
    except ValueError as exc:
        yield RawRecord(1, error=f"invalid JSON array: {exc}", code="file")
        return
    if not isinstance(records, list):
        yield RawRecord(1, error="expected a JSON array of records", code="file")
        return
    if not records:
        yield RawRecord(1, error="the JSON array is empty (expected records)", code="file")
        return
    for index, record in enumerate(records, start=1):
        error = broken_unicode(record) if "\\u" in text else None
        yield RawRecord(index, error=error) if error else RawRecord(index, record)


def _read_parquet(path: Path) -> Iterator[RawRecord]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        yield RawRecord(
            1, error="reading Parquet needs pyarrow (pip install 'tunegate[data]')", code="file"
        )
        return
    index = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=2048):
            for row in batch.to_pylist():
                index += 1
                yield RawRecord(index, row)
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"after row {index}" if index else "before the first row"
        yield RawRecord(
            index + 1,
            error=f"cannot read Parquet {where}: {first} (expected an intact Parquet file)",
            code="file",
        )
