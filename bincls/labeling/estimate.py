"""The session's guesses for every image of the pile, and how far to trust them.

Guesses: a logistic regression on the answers (classes weighing the same), its probabilities made honest
by a temperature fitted on out-of-sample logits of the answered images. Not moved by the pile's class
balance: measured (bench/labeling.py), that accepts more rare images as the common class, and the final
model loses more by them than it gains.

Two accuracy estimates, both from out-of-sample guesses of the answered images (each from a model fitted
without it, stratified 5-fold): on the answers themselves, with a Wilson 95% interval, and on the rest of
the pile, post-stratified by the guesses' confidence (the answered images are the hard and rare ones: the
rest is mostly guessed with high confidence, where answers are few). bench/labeling.py measures both
against the real accuracy: the first is far too low, the second close and mostly inside its interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bincls.labeling.model import Linear, calibrate, fit, out_of_sample_logits, sigmoid

CONFIDENT = 0.9  # `accept the confident guesses` takes guesses at least this probable (bench/labeling.py)
Z95 = 1.959963984540054
PRIOR_CLIP = (0.01, 0.99)
PRIOR_SHIFT = False  # measured: moving by the pile's balance accepts more rare images as common


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of successes / trials (NaN, NaN for no trials). The formula, not scipy's
    binomtest: importing scipy.stats costs a `--next` call a second."""
    if trials <= 0:
        return math.nan, math.nan
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Guesses:
    """P(second class) for every image of the pile (NaN when no model can be fitted yet)."""

    p1: np.ndarray
    model: Linear | None
    out_of_sample: np.ndarray | None  # logits of the answered images, each from a model without it
    prior: float  # share of the second class over the pile, as the model guesses it

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """P(second class) for other images (projected as the pile was): what the session would guess."""
        if self.model is None:
            return np.full(len(x), np.nan)
        return sigmoid(self.model.logits(x) + math.log(self.prior / (1 - self.prior)))

    def guess(self, i: int) -> tuple[int, float]:
        """(class index, its probability) for image i; (0, 0.5) without a model."""
        p = float(self.p1[i])
        if math.isnan(p):
            return 0, 0.5
        return (1, p) if p >= 0.5 else (0, 1.0 - p)

    def confident(self, cut: float = CONFIDENT) -> np.ndarray:
        """Boolean mask of the images whose guess is at least `cut` probable."""
        p = np.nan_to_num(self.p1, nan=0.5)
        return np.maximum(p, 1.0 - p) >= cut


def guesses(x: np.ndarray, answered: np.ndarray, labels: np.ndarray,
            prior_shift: bool = PRIOR_SHIFT) -> Guesses:  # fmt: skip
    """The guesses on all of `x` from the answers (`answered` indices, `labels` 0/1)."""
    labels = np.asarray(labels, dtype=int)
    if len(set(labels.tolist())) < 2:
        return Guesses(np.full(len(x), np.nan), None, None, math.nan)
    model = fit(x[answered], labels)
    oos = out_of_sample_logits(x[answered], labels)
    temperature = calibrate(oos, labels) if oos is not None else 1.0
    z = model.logits(x) / temperature
    guessed = z > 0
    guessed[answered] = labels == 1
    prior = float(np.clip(guessed.mean(), *PRIOR_CLIP)) if prior_shift else 0.5
    p1 = sigmoid(z + math.log(prior / (1 - prior)))
    return Guesses(p1, Linear(model.w, model.b, temperature), oos, prior)


BINS = (0.5, 0.7, 0.9, 0.97, 1.0001)  # confidence bands of the post-stratified estimate
EMPTY_BAND_WEIGHT = 2  # a band without answers: its own mean confidence, worth this many answers


@dataclass(frozen=True)
class AccuracyEstimate:
    right: int
    answered: int
    accuracy: float  # of the guesses on the answered images, each from a model that had not seen it
    interval: tuple[float, float]
    per_class: tuple[tuple[int, int], tuple[int, int]]  # (right, answered) per class
    rest: float  # of the guesses on the images not answered yet, post-stratified by confidence
    rest_interval: tuple[float, float]

    def to_dict(self, names: list[str]) -> dict:
        return {
            "accuracy": self.accuracy,
            "interval": list(self.interval),
            "right": self.right,
            "answered": self.answered,
            "per_class": {names[c]: {"right": r, "answered": n, "recall": r / n if n else math.nan}
                          for c, (r, n) in enumerate(self.per_class)},
            "rest": self.rest,
            "rest_interval": list(self.rest_interval),
            "how": "accuracy: each answered image guessed by a model fitted without it (stratified 5-fold), "
                   "Wilson 95% interval; the session asks about hard and rare images, so this is low for "
                   "the rest of the pile. rest: the same out-of-sample hits weighted by how many unanswered "
                   "images fall in each confidence band of the guesses (post-stratified; a band without "
                   "answers counts its own mean confidence as two answers), each band's Wilson interval "
                   "weighted alike",
        }  # fmt: skip


def _guessed_right(g: Guesses, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right?, confidence) of the out-of-sample guess of each answered image, made as the session guesses."""
    p = sigmoid(g.out_of_sample / g.model.temperature + math.log(g.prior / (1 - g.prior)))
    return (p >= 0.5) == (labels == 1), np.maximum(p, 1 - p)


def accuracy_estimate(g: Guesses, labels: np.ndarray,
                      free: np.ndarray | None = None) -> AccuracyEstimate | None:  # fmt: skip
    """How often a model that had not seen an answered image guessed it right, and what that says about the
    unanswered images `free`; None before 2 answers of each class."""
    if g.out_of_sample is None:
        return None
    labels = np.asarray(labels, dtype=int)
    right, conf = _guessed_right(g, labels)
    per_class = tuple((int(right[labels == c].sum()), int((labels == c).sum())) for c in (0, 1))
    n = len(labels)
    rest, rest_interval = _post_stratified(g, right, conf, free)
    return AccuracyEstimate(int(right.sum()), n, float(right.mean()), wilson(int(right.sum()), n), per_class,
                            rest, rest_interval)  # fmt: skip


def _post_stratified(g: Guesses, right: np.ndarray, conf: np.ndarray,
                     free: np.ndarray | None) -> tuple[float, tuple[float, float]]:  # fmt: skip
    if free is None or len(free) == 0:
        return math.nan, (math.nan, math.nan)
    p = g.p1[free]
    rest_conf = np.maximum(p, 1 - p)
    value = low = high = 0.0
    for lo_edge, hi_edge in zip(BINS[:-1], BINS[1:]):
        here = (rest_conf >= lo_edge) & (rest_conf < hi_edge)
        if not here.any():
            continue
        weight = here.mean()
        answered = (conf >= lo_edge) & (conf < hi_edge)
        hits, n = int(right[answered].sum()), int(answered.sum())
        if n == 0:
            n = EMPTY_BAND_WEIGHT
            hits = float(rest_conf[here].mean()) * n
        acc = hits / n
        band_low, band_high = wilson(hits, n)
        value += weight * acc
        low += weight * band_low
        high += weight * band_high
    return value, (low, high)
