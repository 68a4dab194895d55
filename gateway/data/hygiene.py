"""Duplicates and contamination: exact (normalized) and near duplicates (MinHash LSH), and
n-gram overlap with an eval set. Groups are lists of 1-based line numbers."""

from __future__ import annotations

import hashlib
import string
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.data.formats import Example, content_text

NEAR_THRESHOLD = 0.8  # MinHash Jaccard above which two examples count as near-duplicates
CONTAMINATION_NGRAM = 13  # word n-gram shared with the eval set that flags contamination

_PUNCT = str.maketrans(
    {c: " " for c in string.punctuation + "\u2018\u2019\u201c\u201d\u2013\u2014\u2026"}
)


def words(text: str) -> list[str]:
    """Lower-cased words with punctuation removed: what 'the same text' means here."""
    return text.lower().translate(_PUNCT).split()


def normalize(text: str) -> str:
    return " ".join(words(text))


def _exact_key(ex: Example, normalized: str) -> bytes:
    roles = "|".join(str(m.get("role")) for m in ex.messages if isinstance(m, dict))
    key = f"{ex.kind}|{roles}|{normalized}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(key, digest_size=16).digest()


class _WordHashes(dict):
    """word -> crc32, filled on first sight; lookups of known words stay in C (map + dict)."""

    def __missing__(self, word: str) -> int:
        if len(self) > 2_000_000:
            self.clear()
        value = self[word] = zlib.crc32(word.encode())
        return value


_WORD_HASHES = _WordHashes()


@dataclass
class Fingerprints:
    """What duplicate search needs of each example, computed in one pass over the text.

    `signatures` is None when near-duplicate search was not asked for."""

    lines: list[int]
    exact_keys: list[bytes]
    signatures: Any = None  # numpy (n, bins) uint64 array
    sets: Any = None  # minhash.ShingleSets: the exact shingle sets candidates are confirmed on

    def exact_groups(self) -> list[list[int]]:
        groups: dict[bytes, list[int]] = {}
        for line, key in zip(self.lines, self.exact_keys, strict=True):
            groups.setdefault(key, []).append(line)
        return sorted(g for g in groups.values() if len(g) > 1)

    def near_groups(self, threshold: float) -> list[list[int]]:
        from gateway.data.minhash import near_groups

        return near_groups(self.signatures, self.lines, threshold, sets=self.sets)

    def near_pairs(self, threshold: float) -> list[tuple[int, int]]:
        """The confirmed pairs behind `near_groups`, as line numbers (what benches measure)."""
        from gateway.data.minhash import confirmed_pairs

        pairs = confirmed_pairs(self.signatures, threshold, sets=self.sets)
        return [(self.lines[a], self.lines[b]) for a, b in pairs]


def fingerprints(
    examples: Iterable[Example], *, near: bool = True, bins: int = 64, batch: int = 1024
) -> Fingerprints:
    """Exact keys (normalized text) and, with `near`, MinHash signatures of word trigrams.

    Works in batches so memory stays bounded by the batch's words, not the file's.
    Raises ImportError for `near` without numpy (the `data` extra).
    """
    if near:
        import numpy as np

        from gateway.data.minhash import ShingleSets, shingle_hashes, signatures
    out = Fingerprints([], [], None)
    blocks, set_blocks = [], []
    chunk: list[list[str]] = []

    def flush() -> None:
        flat = [w for ws in chunk for w in ws]
        wh = np.fromiter(map(_WORD_HASHES.__getitem__, flat), dtype=np.uint64, count=len(flat))
        lengths = np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk))
        shingles = shingle_hashes(wh, lengths)
        blocks.append(signatures(shingles, len(chunk), bins))
        set_blocks.append(ShingleSets.of(shingles, len(chunk)))
        chunk.clear()

    for ex in examples:
        ws = words(ex.all_text())
        out.lines.append(ex.line)
        out.exact_keys.append(_exact_key(ex, " ".join(ws)))
        if near:
            chunk.append(ws)
            if len(chunk) >= batch:
                flush()
    if near:
        if chunk or not blocks:
            flush()
        out.signatures = np.concatenate(blocks)
        out.sets = ShingleSets.join(set_blocks)
    return out


def exact_duplicates(examples: Iterable[Example]) -> list[list[int]]:
    """Groups of lines whose normalized text (case, punctuation, spacing ignored) is identical."""
    return fingerprints(examples, near=False).exact_groups()


def near_duplicates(
    examples: Iterable[Example], threshold: float = NEAR_THRESHOLD
) -> list[list[int]]:
    """Groups of lines whose word-trigram Jaccard similarity is about `threshold` or more.

    One-permutation MinHash with banded LSH (`gateway.data.minhash`); exact duplicates are
    found too, so callers that report both subtract the exact groups.
    """
    return fingerprints(examples).near_groups(threshold)


@dataclass(frozen=True)
class Contamination:
    line: int
    eval_line: int
    ngram: str

    def to_json(self) -> dict[str, object]:
        return {"line": self.line, "eval_line": self.eval_line, "ngram": self.ngram}


def _ngrams(text: str, n: int) -> Iterable[tuple[str, ...]]:
    words = normalize(text).split()
    return (tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def _task_parts(ex: Example) -> list[str]:
    """The example's text without system messages, one piece per message: a system prompt
    shared by train and eval is the house style, not a leaked answer, and an n-gram spanning
    two messages is not a passage either of them holds."""
    parts = [ex.text] if isinstance(ex.text, str) and ex.text else []
    for msg in [*ex.messages, *ex.chosen, *ex.rejected]:
        if isinstance(msg, dict) and msg.get("role") != "system":
            parts.append(content_text(msg.get("content")))
    return [p for p in parts if p]


def contamination(
    train: list[Example], evals: list[Example], n: int = CONTAMINATION_NGRAM
) -> list[Contamination]:
    """Training examples sharing an n-gram (13 words by default) with an eval example, within
    one message's text (system prompts are left out)."""
    index: dict[int, int] = {}
    for ev in evals:
        for part in _task_parts(ev):
            for gram in _ngrams(part, n):
                index.setdefault(hash(gram), ev.line)
    hits = []
    for ex in train:
        found = next(
            (g for part in _task_parts(ex) for g in _ngrams(part, n) if hash(g) in index), None
        )
        if found is not None:
            hits.append(Contamination(ex.line, index[hash(found)], " ".join(found)))
    return hits
