"""Which images to ask about next: the ones whose answers teach the model most.

- No answers of either class yet: a diverse batch, the most typical image of each of K k-means clusters.
- Answers of one class only: the images farthest from every answer, spread over clusters: the other
  class is looked for where the answers are not.
- Both classes answered: mostly the least certain images, one in ten a typical image of a cluster of
  the unlabelled (so that the answers stay a picture of the whole pile), and, when one class is rare
  in the model's guesses (under 20% of the pile), 8 in 10 the images most likely of that class, taken
  in order (a rare class has few images to find: spreading them over clusters of a longer shortlist
  asked about common ones instead). The other parts are spread over clusters so that a batch is not
  ten near-copies of one image.
The choice of this mix over random picking and plain uncertainty is measured in bench/labeling.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bincls.labeling.model import Linear, fit

RARE_SHARE = 0.2  # a class guessed for fewer than this share of the pile is "rare"...
RARE_PART = 0.8  # ...and this share of every batch looks for it, among the RARE_SHORTLIST * k likeliest
RARE_SHORTLIST = 1
DIVERSE_PART = 0.1  # a share of every batch taken as typical images of clusters of the unlabelled
SHORTLIST = 4  # each part picks among the SHORTLIST * k best candidates, spread by k-means
KMEANS_SAMPLE = 3000  # k-means runs on at most this many candidates (a seeded sample)
KMEANS_ROUNDS = 15
ROWS = 20_000  # rows of a distance matrix computed at a time


@dataclass(frozen=True)
class Strategy:
    """How a batch is chosen (`session` is the documented default; the bench compares the others)."""

    name: str = "session"
    rare_share: float = RARE_SHARE
    rare_part: float = RARE_PART
    shortlist: int = SHORTLIST
    rare_shortlist: int = RARE_SHORTLIST
    diverse_part: float = DIVERSE_PART


RANDOM = Strategy("random")
UNCERTAIN = Strategy("uncertain", rare_part=0.0, diverse_part=0.0)
SESSION = Strategy()


@dataclass(frozen=True)
class Pick:
    index: int
    why: str  # "diverse", "unlike the answers", "uncertain", "likely rare", "random"


def kmeans_representatives(x: np.ndarray, candidates: np.ndarray, k: int, seed: int = 0) -> list[int]:
    """The candidate nearest the centre of each of k k-means clusters of `candidates`, largest cluster
    first (k-means++ start, a fixed seed: the same pile gives the same batch)."""
    candidates = np.asarray(candidates)
    if len(candidates) <= k:
        return candidates.tolist()
    rng = np.random.default_rng(seed)
    pool = candidates
    if len(pool) > KMEANS_SAMPLE:
        pool = np.sort(rng.choice(candidates, KMEANS_SAMPLE, replace=False))
    points = x[pool].astype(np.float64)
    centres = _kmeans_pp(points, k, rng)
    for _ in range(KMEANS_ROUNDS):
        assign = _nearest(points, centres)
        moved = np.array([points[assign == j].mean(0) if np.any(assign == j) else centres[j]
                          for j in range(k)])  # fmt: skip
        if np.allclose(moved, centres):
            break
        centres = moved
    assign = _nearest(points, centres)
    sizes = np.bincount(assign, minlength=k)
    chosen: list[int] = []
    for j in np.argsort(-sizes, kind="stable"):
        members = np.flatnonzero(assign == j)
        if len(members) == 0:
            continue
        d = ((points[members] - centres[j]) ** 2).sum(1)
        chosen.append(int(pool[members[np.argmin(d)]]))
    for i in pool:  # an empty cluster: fill up with the remaining candidates, in order
        if len(chosen) >= k:
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    return chosen[:k]


def _kmeans_pp(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [points[rng.integers(len(points))]]
    dist = ((points - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = dist.sum()
        i = rng.choice(len(points), p=dist / total) if total > 0 else rng.integers(len(points))
        centres.append(points[i])
        dist = np.minimum(dist, ((points - points[i]) ** 2).sum(1))
    return np.array(centres)


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = (points**2).sum(1)[:, None] - 2 * points @ centres.T + (centres**2).sum(1)[None, :]
    return np.argmin(d, axis=1)


def _spread(x: np.ndarray, ranked: np.ndarray, k: int, shortlist: int, seed: int) -> list[int]:
    """k of the best-ranked candidates, spread over clusters of the shortlist."""
    if k <= 0:
        return []
    return kmeans_representatives(x, np.sort(ranked[: max(k, shortlist * k)]), k, seed)


def rare_class(model: Linear, x: np.ndarray, labels: np.ndarray, answered: np.ndarray) -> tuple[int, float]:
    """(the class guessed least often over the pile, its share): answers count as they were given."""
    guessed = (model.logits(x) > 0).astype(int)
    guessed[answered] = labels
    share1 = float(guessed.mean()) if len(guessed) else 0.5
    return (1, share1) if share1 <= 0.5 else (0, 1.0 - share1)


def choose(x: np.ndarray, answered: np.ndarray, labels: np.ndarray, unavailable: np.ndarray, k: int,
           strategy: Strategy = SESSION, seed: int = 0) -> list[Pick]:  # fmt: skip
    """Up to k images to ask about next. `answered`: indices with a class answer (`labels` 0/1);
    `unavailable`: indices never to suggest (answered, skipped, neither, accepted)."""
    free = np.setdiff1d(np.arange(len(x)), unavailable)
    k = min(k, len(free))
    if k <= 0:
        return []
    if strategy.name == "random":
        rng = np.random.default_rng(seed + len(answered))
        return [Pick(int(i), "random") for i in np.sort(rng.choice(free, k, replace=False))]
    present = set(np.asarray(labels).tolist())
    if not present:
        return [Pick(i, "diverse") for i in kmeans_representatives(x, free, k, seed)]
    if len(present) == 1:
        return [Pick(i, "unlike the answers") for i in _unlike(x, answered, free, k, strategy, seed)]
    model = fit(x[answered], labels)
    z = model.logits(x)[free]
    rare, share = rare_class(model, x, labels, answered)
    n_rare = int(round(k * strategy.rare_part)) if share < strategy.rare_share else 0
    toward_rare = z if rare == 1 else -z
    picks = [Pick(i, "likely rare") for i in _spread(x, free[np.argsort(-toward_rare, kind="stable")],
                                                     n_rare, strategy.rare_shortlist, seed)]  # fmt: skip
    n_diverse = int(round(k * strategy.diverse_part))
    if n_diverse:
        rest = free[~np.isin(free, [p.index for p in picks])]
        picks += [Pick(i, "diverse") for i in kmeans_representatives(x, rest, n_diverse, seed)]
    taken = {p.index for p in picks}
    order = free[np.argsort(np.abs(z), kind="stable")]
    order = order[~np.isin(order, list(taken))]
    picks += [Pick(i, "uncertain") for i in _spread(x, order, k - len(picks), strategy.shortlist, seed)]
    return picks


def _unlike(x: np.ndarray, answered: np.ndarray, free: np.ndarray, k: int, strategy: Strategy,
            seed: int) -> list[int]:  # fmt: skip
    """The free images farthest from every answered one (distance to the nearest answer), spread over
    clusters. Measured against a logistic regression of answered against free, and the distance to the
    answers' centre, on rare piles of the shared data: it finds the most images of the other class."""
    nearest = np.full(len(free), np.inf, np.float32)
    xa = x[answered]
    xa_norms = (xa**2).sum(1)
    for start in range(0, len(free), ROWS):  # a million free images: a block of rows at a time
        xf = x[free[start : start + ROWS]]
        d = (xf**2).sum(1)[:, None] - 2 * xf @ xa.T + xa_norms[None, :]
        nearest[start : start + ROWS] = d.min(axis=1)
    return _spread(x, free[np.argsort(-nearest, kind="stable")], k, strategy.shortlist, seed)
