"""Cleaned copies of a dataset: `dedup_file` drops duplicates (and lengths outside a range) with
a manifest of every dropped line; `split_file` writes a duplicate-safe train/valid split.
Records are copied as read; the input file is never modified."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.data.convert import write_jsonl
from gateway.data.formats import Example, LoadedFile, load, read_records
from gateway.data.hygiene import NEAR_THRESHOLD, fingerprints
from gateway.data.split import split
from gateway.data.tokens import token_stats
from gateway.errors import SpecError


def write_records(path: Path, source: Path, keep: set[int]) -> int:
    """Copy the records of `source` whose line is in `keep` to `path` (JSONL, atomically)."""
    return write_jsonl(
        path, (r.data for r in read_records(source) if r.error is None and r.line in keep)
    )


def drops(
    examples: list[Example],
    *,
    near: bool = True,
    threshold: float = NEAR_THRESHOLD,
    min_tokens: int | None = None,
    max_tokens: int | None = None,
) -> dict[int, dict[str, Any]]:
    """Line -> why it is dropped; the first line of each duplicate group is kept."""
    dropped: dict[int, dict[str, Any]] = {}
    prints = fingerprints(examples, near=near)
    for group in prints.exact_groups():
        for line in group[1:]:
            dropped[line] = {"line": line, "reason": "exact duplicate", "duplicate_of": group[0]}
    if near:
        for group in prints.near_groups(threshold):
            kept = next((g for g in group if g not in dropped), group[0])
            for line in group:
                if line != kept and line not in dropped:
                    dropped[line] = {
                        "line": line,
                        "reason": f"near duplicate (>= {threshold})",
                        "duplicate_of": kept,
                    }
    if min_tokens or max_tokens:
        for ex, n in zip(examples, token_stats(examples).lengths, strict=True):
            if ex.line in dropped:
                continue
            if min_tokens and n < min_tokens:
                dropped[ex.line] = {
                    "line": ex.line,
                    "reason": f"{n} tokens, under the minimum {min_tokens}",
                }
            elif max_tokens and n > max_tokens:
                dropped[ex.line] = {
                    "line": ex.line,
                    "reason": f"{n} tokens, over the maximum {max_tokens}",
                }
    return dropped


@dataclass
class DedupResult:
    kept: int
    dropped: int
    out: Path
    manifest: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "dropped": self.dropped,
            "out": str(self.out),
            "manifest": str(self.manifest),
        }


def dedup_file(source: Path, out: Path, **options: Any) -> DedupResult:
    """Write the cleaned copy to `out` and every dropped line, with its reason, to
    OUT.manifest.jsonl. Records that are valid JSON but not a known format are copied as they
    are; lines that cannot be read at all are listed in the manifest, never dropped silently."""
    loaded = load(source)
    unreadable = _refuse_unreadable(loaded, source)
    dropped = drops(loaded.examples, **options)
    keep = {ex.line for ex in loaded.examples if ex.line not in dropped}
    keep |= {line for line, _ in loaded.unknown_lines} | {line for line, _ in loaded.shape_errors}
    kept = write_records(out, source, keep)
    manifest = out.with_name(out.name + ".manifest.jsonl")
    rows = {**dropped, **unreadable}
    write_jsonl(manifest, [rows[k] for k in sorted(rows)])
    return DedupResult(kept, len(rows), out, manifest)


def _refuse_unreadable(loaded: LoadedFile, source: Path) -> dict[int, dict[str, Any]]:
    """Manifest rows for lines that cannot be read; a file unreadable as a whole is refused."""
    whole = next((r for r in loaded.read_errors if r.code == "file"), None)
    if whole is not None and not loaded.examples:
        raise SpecError(f"cannot deduplicate: {whole.error}", where=f"{source}:{whole.line}")
    return {
        r.line: {"line": r.line, "reason": f"unreadable: {r.error}"}
        for r in loaded.read_errors
        if r.code not in ("file", "bom")
    }


def split_file(source: Path, folder: Path, val_fraction: float, seed: int = 0) -> dict[str, Any]:
    """Write folder/train.jsonl and folder/valid.jsonl; duplicate groups stay on one side."""
    train, valid = split(load(source).examples, val_fraction, seed)
    n_train = write_records(folder / "train.jsonl", source, {e.line for e in train})
    n_valid = write_records(folder / "valid.jsonl", source, {e.line for e in valid})
    return {"train": n_train, "valid": n_valid, "folder": str(folder)}
