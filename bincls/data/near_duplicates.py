"""Near-duplicates: the same photo resized, re-encoded, lightly cropped, re-exposed or mirrored.

Each image gets a 64-bit perceptual hash (imagehash's pHash) of the small thumbnail the scan decodes
anyway, and one of its mirror image (training flips images, so a mirrored copy is a copy the model
sees). Two images whose hashes differ in at most `THRESHOLD` bits are near-duplicates; groups are the
connected pairs. docs/measurements.md has the recall and false merges behind the threshold
(`bench/near_duplicates.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Protocol

import imagehash
import numpy as np
from PIL import Image, ImageOps
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# Bits of 64 that may differ. Measured on 120 shared photos x 7 edits and 800 distinct photos:
# resized, JPEG quality 15, +-25% brightness and mirrored copies all found, 92% of 5% crops, one
# distinct pair merged (itself a real near-duplicate of the data set); 10 bits merges 2 more pairs.
THRESHOLD = 8
CHUNKS = 4  # the index: 4 x 16-bit slices of the hash (multi-index hashing)
_CHUNK_BITS = 64 // CHUNKS


def image_hashes(rgb: Image.Image) -> tuple[str, str]:
    """(pHash, pHash of the mirror image) of a decoded image, as 16 hex digits each."""
    return str(imagehash.phash(rgb)), str(imagehash.phash(ImageOps.mirror(rgb)))


@dataclass(frozen=True)
class NearDuplicateGroup:
    """Images that are one photo in different files. `distances[i]`: differing hash bits between
    `paths[i]` and `paths[0]` (the mirror's when closer); 0 for byte-identical copies."""

    paths: tuple[str, ...]
    distances: tuple[int, ...]
    classes: tuple[str, ...]  # the class of each path

    @property
    def label_conflict(self) -> bool:
        return len(set(self.classes)) > 1

    def to_dict(self) -> dict:
        return {"paths": list(self.paths), "distances": list(self.distances), "classes": list(self.classes),
                "label_conflict": self.label_conflict}  # fmt: skip


def hash_array(hexes: list[str]) -> np.ndarray:
    return np.array([int(h, 16) for h in hexes], dtype=np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a ^ b)


def _neighbour_masks(radius: int) -> np.ndarray:
    """Every 16-bit pattern with at most `radius` bits set."""
    masks = [0]
    for k in range(1, radius + 1):
        masks += [sum(1 << b for b in bits) for bits in combinations(range(_CHUNK_BITS), k)]
    return np.array(masks, dtype=np.uint64)


def close_pairs(hashes: np.ndarray, mirrored: np.ndarray, threshold: int = THRESHOLD) -> np.ndarray:
    """[K, 3] (i, j, distance) for i < j whose hashes (or i's mirror and j) differ in <= threshold bits.

    Multi-index hashing, not all N^2 pairs: if two 64-bit hashes differ in at most t bits, one of
    their four 16-bit slices differs in at most t // 4 (pigeonhole). So each hash looks up only the
    slices within that radius of its own, and only those candidates are compared in full.
    """
    n = len(hashes)
    if n < 2:
        return np.zeros((0, 3), dtype=np.int64)
    masks = _neighbour_masks(threshold // CHUNKS)
    found = []
    for c in range(CHUNKS):
        shift = np.uint64(c * _CHUNK_BITS)
        keys = ((hashes >> shift) & np.uint64(0xFFFF)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        count = np.bincount(keys, minlength=1 << _CHUNK_BITS)
        start = np.concatenate(([0], np.cumsum(count)[:-1]))
        for queries in (hashes, mirrored):
            qkeys = ((queries >> shift) & np.uint64(0xFFFF)).astype(np.uint64)
            for mask in masks:
                q = (qkeys ^ mask).astype(np.int64)
                hits = count[q]
                total = int(hits.sum())
                if total == 0:
                    continue
                i = np.repeat(np.arange(n), hits)
                offset = np.arange(total) - np.repeat(np.cumsum(hits) - hits, hits)
                j = order[np.repeat(start[q], hits) + offset]
                keep = i != j
                i, j = i[keep], j[keep]
                d = hamming(queries[i], hashes[j])
                near = d <= threshold
                found.append(np.stack([np.minimum(i, j)[near], np.maximum(i, j)[near], d[near]], axis=1))
    if not found:
        return np.zeros((0, 3), dtype=np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    # The same pair comes from several slices and both directions: keep its smallest distance.
    pairs = pairs[np.lexsort((pairs[:, 2], pairs[:, 1], pairs[:, 0]))]
    first = np.ones(len(pairs), dtype=bool)
    first[1:] = (pairs[1:, 0] != pairs[:-1, 0]) | (pairs[1:, 1] != pairs[:-1, 1])
    return pairs[first]


def group_indices(n: int, pairs: np.ndarray) -> list[list[int]]:
    """Connected groups (two or more members) of the graph whose edges are `pairs`, sorted."""
    if not len(pairs):
        return []
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    members: dict[int, list[int]] = {}
    for i in np.flatnonzero(sizes[labels] > 1):
        members.setdefault(int(labels[i]), []).append(int(i))
    return sorted(members.values())


class Record(Protocol):  # what is read of the scan's ImageRecord
    path: str
    label: int
    sha256: str


def find_near_duplicates(
    records: Sequence[Record], hashes: np.ndarray, mirrored: np.ndarray, class_names: list[str],
    threshold: int = THRESHOLD,
) -> list[NearDuplicateGroup]:
    """Groups of images that look the same, with at least two different files' contents (groups of
    byte-identical copies only are the scan's exact duplicates). Paths in a group are sorted."""
    paths = [r.path for r in records]
    out = []
    for members in group_indices(len(paths), close_pairs(hashes, mirrored, threshold)):
        if len({records[i].sha256 for i in members}) < 2:
            continue
        members.sort(key=lambda i: paths[i])
        ref = members[0]
        dist = [int(min(hamming(hashes[ref], hashes[i]), hamming(mirrored[ref], hashes[i]))) for i in members]
        out.append(NearDuplicateGroup(tuple(paths[i] for i in members), tuple(dist),
                                      tuple(class_names[records[i].label] for i in members)))  # fmt: skip
    return sorted(out, key=lambda g: g.paths)


def left_out_across_given_splits(groups: list[NearDuplicateGroup], given: dict[str, str | None],
                                 order: dict[str | None, int]) -> dict[str, str]:  # fmt: skip
    """In a pre-split layout the folders fix the split, so a group across them cannot be moved: its
    copies in a later split (val, test) are left out, as byte-identical copies are, so that split
    never scores a photo that training saw. {path: reason}."""
    out = {}
    for g in groups:
        splits = {given.get(p) for p in g.paths}
        if len(splits) < 2:
            continue
        first = min(splits, key=lambda s: order[s])
        keep = next(p for p in g.paths if given.get(p) == first)
        reason = f"near-duplicate of {keep} (in {first}): left out so that the split is not scored on it"
        out.update({p: reason for p in g.paths if given.get(p) != first})
    return out
