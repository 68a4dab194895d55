"""Duplicates and contamination: exact (normalized) and near duplicates (MinHash LSH), and
n-gram overlap with an eval set. Groups are lists of 1-based line numbers."""

from __future__ import annotations

import hashlib
import string
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gateway.data.formats import Example

_PUNCT = str.maketrans(
    {c: " " for c in string.punctuation + "\u2018\u2019\u201c\u201d\u2013\u2014\u2026"}
)


def words(text: str) -> list[str]:
    """Lower-cased words with punctuation removed: what 'the same text' means here."""
    return text.lower().translate(_PUNCT).split()


def normalize(text: str) -> str:
    return " ".join(words(text))


def _key(ex: Example) -> str:
    roles = "|".join(str(m.get("role")) for m in ex.messages if isinstance(m, dict))
    return hashlib.blake2b(
        f"{ex.kind}|{roles}|{normalize(ex.all_text())}".encode(), digest_size=16
    ).hexdigest()


def exact_duplicates(examples: Iterable[Example]) -> list[list[int]]:
    """Groups of lines whose normalized text (case, punctuation, spacing ignored) is identical."""
    groups: dict[str, list[int]] = {}
    for ex in examples:
        groups.setdefault(_key(ex), []).append(ex.line)
    return sorted(g for g in groups.values() if len(g) > 1)


class _WordHashes(dict):
    """word -> crc32, filled on first sight; lookups of known words stay in C (map + dict)."""

    def __missing__(self, word: str) -> int:
        if len(self) > 2_000_000:
            self.clear()
        value = self[word] = zlib.crc32(word.encode())
        return value


_WORD_HASHES = _WordHashes()


def _shingle_hashes(text: str, n: int = 3):  # -> numpy array of uint64
    """32-bit hashes of the word n-grams of `text`, deterministic across runs (crc32 per word,
    combined per n-gram with numpy), so manifests and splits are reproducible."""
    import numpy as np

    ws = words(text)
    if not ws:
        return np.empty(0, dtype=np.uint64)
    wh = np.fromiter(map(_WORD_HASHES.__getitem__, ws), dtype=np.uint64, count=len(ws))
    if len(wh) < n:
        return np.unique(wh)
    combined = wh[: len(wh) - n + 1].copy()
    for k in range(1, n):
        combined = (combined * np.uint64(1_000_003) + wh[k : len(wh) - n + 1 + k]) & np.uint64(
            0xFFFFFFFF
        )
    return np.unique(combined)


def _minhashes(examples: list[Example], num_perm: int) -> Iterator[tuple[int, object]]:
    """(line, MinHash) per example with text; one permutation set reused for all (datasketch)."""
    from datasketch import MinHash

    template = MinHash(num_perm=num_perm, seed=1, hashfunc=int)
    for ex in examples:
        hashes = _shingle_hashes(ex.all_text())
        if len(hashes):
            mh = template.copy()
            mh.update_batch(hashes.tolist())
            yield ex.line, mh


def near_duplicates(
    examples: list[Example], threshold: float = 0.8, num_perm: int = 64
) -> list[list[int]]:
    """Groups of lines whose word-trigram Jaccard similarity is about `threshold` or more.

    MinHash LSH (datasketch) proposes candidates; each pair is confirmed on the MinHash
    estimate. Exact duplicates are found too; callers that report both subtract the exact groups.
    """
    from datasketch import MinHashLSH  # the `data` extra

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    parent: dict[int, int] = {}
    sketches: dict[int, object] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for line, mh in _minhashes(examples, num_perm):
        for other in lsh.query(mh):
            if mh.jaccard(sketches[other]) >= threshold:
                parent[find(line)] = find(other)
        lsh.insert(line, mh)
        sketches[line] = mh
        find(line)
    groups: dict[int, list[int]] = {}
    for line in parent:
        groups.setdefault(find(line), []).append(line)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


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


def contamination(train: list[Example], evals: list[Example], n: int = 13) -> list[Contamination]:
    """Training examples sharing an n-gram (13 words by default) with an eval example."""
    index: dict[int, int] = {}
    for ev in evals:
        for gram in _ngrams(ev.all_text(), n):
            index.setdefault(hash(gram), ev.line)
    hits = []
    for ex in train:
        for gram in _ngrams(ex.all_text(), n):
            if hash(gram) in index:
                hits.append(Contamination(ex.line, index[hash(gram)], " ".join(gram)))
                break
    return hits
