"""Train/validation split that never puts near duplicates on both sides."""

from __future__ import annotations

import random

from gateway.data.formats import Example
from gateway.data.hygiene import NEAR_THRESHOLD, fingerprints


def split(
    examples: list[Example], val_fraction: float, seed: int = 0, threshold: float = NEAR_THRESHOLD
) -> tuple[list[Example], list[Example]]:
    """Split whole duplicate groups (exact or near) so no group straddles train and validation."""
    if not 0 < val_fraction < 1:
        raise ValueError("val_fraction must be between 0 and 1")
    parent = {ex.line: ex.line for ex in examples}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    try:
        prints = fingerprints(examples)
        dup_groups = [*prints.exact_groups(), *prints.near_groups(threshold)]
    except ImportError:  # no numpy: exact duplicates only
        dup_groups = fingerprints(examples, near=False).exact_groups()
    for group in dup_groups:
        for line in group[1:]:
            parent[find(line)] = find(group[0])
    clusters: dict[int, list[Example]] = {}
    for ex in examples:
        clusters.setdefault(find(ex.line), []).append(ex)
    keys = sorted(clusters)
    random.Random(seed).shuffle(keys)
    target = round(len(examples) * val_fraction)
    val: list[Example] = []
    train: list[Example] = []
    for key in keys:
        (val if len(val) < target else train).extend(clusters[key])
    return sorted(train, key=lambda e: e.line), sorted(val, key=lambda e: e.line)
