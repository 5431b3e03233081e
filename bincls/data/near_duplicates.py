"""Near-duplicates: the same photo resized, re-encoded, lightly cropped, re-exposed or mirrored.

Each image gets a 64-bit perceptual hash (imagehash's pHash) of the small thumbnail the scan decodes
anyway, and one of its mirror image (training flips images, so a mirrored copy is a copy the model
sees). Two images whose hashes differ in at most `THRESHOLD` bits are near-duplicates; groups are the
connected pairs. docs/measurements.md has the recall and false merges behind the threshold
(`bench/near_duplicates.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
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


# Candidates compared per numpy step, and pairs held before they are folded into groups: memory
# stays bounded even when thousands of images share one hash (a folder of near-identical frames).
BATCH = 1 << 21
FULL_UP_TO = 4096


def close_pairs(hashes: np.ndarray, mirrored: np.ndarray, threshold: int = THRESHOLD) -> Iterator[np.ndarray]:
    """[K, 2] arrays of (i, j), i != j, whose hashes (or i's mirror and j's hash) differ in <= threshold bits.

    Multi-index hashing, not all N^2 pairs: if two 64-bit hashes differ in at most t bits, one of
    their four 16-bit slices differs in at most t // 4 (pigeonhole). So each hash looks up only the
    slices within that radius of its own, and only those candidates are compared in full. Up to
    `FULL_UP_TO` hashes, comparing every pair at once is quicker than the index's ~1,100 lookups.
    """
    if len(hashes) <= FULL_UP_TO:
        yield from _all_pairs(hashes, mirrored, threshold)
        return
    masks = _neighbour_masks(threshold // CHUNKS)
    for c in range(CHUNKS):
        shift = np.uint64(c * _CHUNK_BITS)
        keys = ((hashes >> shift) & np.uint64(0xFFFF)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        count = np.bincount(keys, minlength=1 << _CHUNK_BITS)
        start = np.concatenate(([0], np.cumsum(count)[:-1]))
        for queries in (hashes, mirrored):
            qkeys = (queries >> shift) & np.uint64(0xFFFF)
            for mask in masks:
                q = (qkeys ^ mask).astype(np.int64)
                hits = count[q]
                for lo, hi in _batches(hits):
                    yield _compare(lo, hi, q, hits, start, order, queries, hashes, threshold)


def _all_pairs(hashes: np.ndarray, mirrored: np.ndarray, threshold: int) -> Iterator[np.ndarray]:
    rows = max(1, BATCH // max(len(hashes), 1))
    for lo in range(0, len(hashes), rows):
        block = slice(lo, lo + rows)
        d = np.minimum(hamming(hashes[block, None], hashes), hamming(mirrored[block, None], hashes))
        i, j = np.nonzero(d <= threshold)
        i += lo
        yield np.stack([i[i != j], j[i != j]], axis=1)


def _batches(hits: np.ndarray) -> Iterator[tuple[int, int]]:
    """Ranges of queries with about BATCH candidates each (one query alone may have more)."""
    ends = np.cumsum(hits)
    if not len(ends) or ends[-1] == 0:
        return
    cuts = np.searchsorted(ends, np.arange(BATCH, ends[-1], BATCH), side="right")
    bounds = np.unique(np.r_[0, cuts, len(hits)])
    yield from zip(bounds[:-1].tolist(), bounds[1:].tolist())


def _compare(lo, hi, q, hits, start, order, queries, hashes, threshold) -> np.ndarray:
    """The candidates of queries lo..hi (those sharing the looked-up slice), kept where close in full."""
    hits = hits[lo:hi]
    total = int(hits.sum())
    i = np.repeat(np.arange(lo, hi), hits)
    offset = np.arange(total) - np.repeat(np.cumsum(hits) - hits, hits)
    j = order[np.repeat(start[q[lo:hi]], hits) + offset]
    near = (i != j) & (hamming(queries[i], hashes[j]) <= threshold)
    return np.stack([i[near], j[near]], axis=1)


def _components(n: int, pair_batches: Iterable[np.ndarray]) -> np.ndarray:
    """Component label of each of n nodes. Pairs are folded into a star per component whenever
    they pile up, so at most about n + BATCH edges are ever held."""
    held, size = [np.zeros((0, 2), dtype=np.int64)], 0
    for pairs in pair_batches:
        held.append(pairs)
        size += len(pairs)
        if size > BATCH:
            held, size = [_stars(n, np.concatenate(held))], 0
    return _labels(n, np.concatenate(held))


def _labels(n: int, pairs: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _stars(n: int, pairs: np.ndarray) -> np.ndarray:
    """The same components as `pairs`, as edges from each member to its component's first node."""
    labels = _labels(n, pairs)
    root = np.full(labels.max() + 1, n)
    np.minimum.at(root, labels, np.arange(n))
    others = np.flatnonzero(root[labels] != np.arange(n))
    return np.stack([others, root[labels[others]]], axis=1)


def group_indices(n: int, pair_batches: Iterable[np.ndarray]) -> list[list[int]]:
    """Connected groups (two or more members) of the graph whose edges are the pairs, sorted."""
    if n < 2:
        return []
    labels = _components(n, pair_batches)
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
    byte-identical copies only are the scan's exact duplicates). Only one file per hash is searched
    (byte-identical copies share it); the files with its hash join its group. Paths in a group are sorted."""
    values, first, which = np.unique(hashes, return_index=True, return_inverse=True)
    counts = np.bincount(which, minlength=len(values))
    by_hash, bounds = np.argsort(which, kind="stable"), np.r_[0, np.cumsum(counts)]
    groups = group_indices(len(values), close_pairs(values, mirrored[first], threshold))
    grouped = {k for g in groups for k in g}
    groups += [[int(k)] for k in np.flatnonzero(counts > 1) if k not in grouped]
    out = []
    for found in groups:
        files = [i for k in found for i in by_hash[bounds[k] : bounds[k + 1]].tolist()]
        members = sorted(files, key=lambda i: records[i].path)
        if len({records[i].sha256 for i in members}) < 2:
            continue
        ref = members[0]
        dist = [int(min(hamming(hashes[ref], hashes[i]), hamming(mirrored[ref], hashes[i]))) for i in members]
        out.append(NearDuplicateGroup(tuple(records[i].path for i in members), tuple(dist),
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
