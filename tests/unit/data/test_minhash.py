"""Near-duplicate search checked against exact Jaccard similarity and against datasketch."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gateway.data.formats import Example
from gateway.data.hygiene import fingerprints, words
from gateway.data.minhash import bands_for, shingle_hashes, signatures, similarity

VOCAB = [f"w{i}" for i in range(400)]


def _text_example(line: int, text: str) -> Example:
    return Example(line=line, kind="text", source_format="text", text=text)


def _trigrams(text: str) -> set[tuple[str, ...]]:
    ws = words(text)
    return {tuple(ws[i : i + 3]) for i in range(max(1, len(ws) - 2))}


def _jaccard(a: str, b: str) -> float:
    x, y = _trigrams(a), _trigrams(b)
    return len(x & y) / len(x | y)


def _corpus(seed: int = 0) -> list[str]:
    """Random texts plus mutated copies at a spread of similarities."""
    rng = random.Random(seed)
    texts = []
    for _ in range(120):
        base = [rng.choice(VOCAB) for _ in range(rng.randint(20, 200))]
        texts.append(" ".join(base))
        for edits in (1, 3, 12, 40):
            copy = list(base)
            for _ in range(edits):
                copy[rng.randrange(len(copy))] = rng.choice(VOCAB)
            texts.append(" ".join(copy))
    return texts


def test_signature_estimate_tracks_exact_jaccard():
    texts = _corpus()
    prints = fingerprints([_text_example(i + 1, t) for i, t in enumerate(texts)])
    errors = []
    for i in range(0, len(texts), 5):
        for j in range(i + 1, i + 5):
            est = float(similarity(prints.signatures[i], prints.signatures[j]))
            errors.append(abs(est - _jaccard(texts[i], texts[j])))
    # 64 bins: the MinHash standard error is at most 0.5/sqrt(64) = 0.0625
    assert np.mean(errors) < 0.05 and max(errors) < 0.25


def test_groups_find_every_close_pair_and_no_distant_one():
    texts = _corpus(1)
    prints = fingerprints([_text_example(i + 1, t) for i, t in enumerate(texts)])
    grouped = {}
    for g, group in enumerate(prints.near_groups(0.8)):
        for line in group:
            grouped[line] = g
    close = distant = 0
    for i in range(0, len(texts), 5):
        for j in range(i + 1, i + 5):
            same = grouped.get(i + 1) is not None and grouped.get(i + 1) == grouped.get(j + 1)
            true = _jaccard(texts[i], texts[j])
            if true >= 0.93:
                close += 1
                assert same, (i, j, true)
            if true < 0.6:
                distant += 1
                assert not same, (i, j, true)
    assert close >= 5 and distant >= 5, (close, distant)  # both properties were really checked


def test_agrees_with_datasketch_minhash_lsh():
    datasketch = pytest.importorskip("datasketch")
    texts = _corpus(2)
    lsh = datasketch.MinHashLSH(threshold=0.8, num_perm=128)
    sketches = {}
    for i, text in enumerate(texts):
        mh = datasketch.MinHash(num_perm=128, seed=3)
        for gram in _trigrams(text):
            mh.update(" ".join(gram).encode())
        lsh.insert(i + 1, mh)
        sketches[i + 1] = mh
    theirs = set()
    for line, mh in sketches.items():
        for other in lsh.query(mh):
            if other != line and mh.jaccard(sketches[other]) >= 0.8:
                theirs.add((min(line, other), max(line, other)))
    prints = fingerprints([_text_example(i + 1, t) for i, t in enumerate(texts)])
    ours = _closure([tuple(g) for g in prints.near_groups(0.8)])
    theirs = _closure(list(theirs))
    # both estimate the same threshold: pairs close to it may fall either way, no others
    for a, b in theirs ^ ours:
        assert 0.65 <= _jaccard(texts[a - 1], texts[b - 1]) <= 0.95, (a, b)
    # and against the exact similarity of each family's pairs, ours errs no more than theirs
    family = [(i + 1, j + 1) for i in range(0, len(texts), 5) for j in range(i + 1, i + 5)]
    truth = {(a, b) for a, b in family if _jaccard(texts[a - 1], texts[b - 1]) >= 0.8}
    wrong_ours = len((ours ^ truth) & set(family))
    wrong_theirs = len((theirs ^ truth) & set(family))
    print(f"misclassified family pairs: ours {wrong_ours}, datasketch {wrong_theirs}")
    assert wrong_ours <= 1.5 * wrong_theirs + 3


def _closure(groups: list[tuple[int, ...]]) -> set[tuple[int, int]]:
    """Every pair connected through the groups (near-duplicate groups are transitive)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for group in groups:
        for line in group[1:]:
            parent[find(line)] = find(group[0])
    members: dict[int, list[int]] = {}
    for line in list(parent):
        members.setdefault(find(line), []).append(line)
    return {(a, b) for m in members.values() for a in m for b in m if a < b}


def test_short_and_empty_texts():
    wh = np.array([7, 8, 9, 10], dtype=np.uint64)
    shingles = shingle_hashes(wh, np.array([1, 0, 3], dtype=np.int64))
    assert list(shingles[:, 0]) == [0, 2]  # one shingle each; the empty text has none
    sig = signatures(shingles, 3, bins=16)
    assert (sig[1] == np.uint64(1 << 32)).all() and (sig[0] != np.uint64(1 << 32)).all()
    prints = fingerprints([_text_example(1, "hi"), _text_example(2, ""), _text_example(3, "hi")])
    assert prints.near_groups(0.8) == [[1, 3]]


def test_bands_favour_recall_and_stay_selective():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        b, r = bands_for(threshold, 64)
        assert b * r <= 64

        def collide(s: float, b: int = b, r: int = r) -> float:
            return 1 - (1 - s**r) ** b

        assert collide(threshold + 0.05) >= 0.99, (threshold, b, r)
        assert collide(threshold - 0.4) < 0.15, (threshold, b, r)  # few false candidates
    # the balanced choice (datasketch's) misses a large share of pairs just above 0.8
    assert 1 - (1 - 0.85**11) ** 5 < 0.7


def test_large_bucket_of_copies_stays_one_group():
    rows = [_text_example(i + 1, "the same sentence, said again and again") for i in range(3000)]
    groups = fingerprints(rows).near_groups(0.8)
    assert groups == [list(range(1, 3001))]


def _templated_pairs() -> list[str]:
    """The issue's case: 100 distinct short templated pairs, true trigram Jaccard ~0.43."""
    return [f"Name the capital of country {i}. City {i}." for i in range(100)]


def test_distinct_short_texts_are_never_grouped():
    """Short texts have fewer shingles than bins; their densified signatures agree on most
    bins. Candidates are confirmed on the exact shingle sets, so none is a duplicate."""
    texts = _templated_pairs()
    pairs = [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))]
    assert max(_jaccard(texts[i], texts[j]) for i, j in pairs) < 0.8  # truly distinct
    prints = fingerprints([_text_example(i + 1, t) for i, t in enumerate(texts)])
    assert prints.near_groups(0.8) == []
    # the estimate alone, as before, grouped some of them: the confirmation is what fixes it
    from gateway.data.minhash import near_groups

    assert near_groups(prints.signatures, prints.lines, 0.8)  # without the exact sets


def test_confirmed_groups_hold_on_exact_similarity():
    """Every pair inside a reported group (by its chain) is at the threshold or above."""
    texts = _corpus(3) + _templated_pairs()
    prints = fingerprints([_text_example(i + 1, t) for i, t in enumerate(texts)])
    groups = prints.near_groups(0.8)
    assert groups
    for group in groups:
        for a in group[1:]:
            best = max(_jaccard(texts[a - 1], texts[b - 1]) for b in group if b != a)
            assert best >= 0.8, (a, group)


def test_dedup_keeps_every_distinct_templated_example(tmp_path):
    import json

    from gateway.data.dedup import dedup_file

    src = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": f"Name the capital of country {i}.", "completion": f"City {i}."}
        for i in range(100)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = dedup_file(src, tmp_path / "out.jsonl")
    kept = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(kept) == 100, report
