"""The session's guesses for every image of the pile, and how far to trust them.

Guesses: a logistic regression on the answers (classes weighing the same), its probabilities made honest
by a temperature fitted on out-of-sample logits of the answered images, then moved by the pile's class
balance as the model sees it (`prior`), so that a guess of a rare class has to be surer than one of the
common class before it is accepted. The accuracy estimate is the share of answered images that a model
fitted without them guessed right (stratified k-fold), with a Wilson 95% interval. The session asks
about the hard and the rare images, so this estimate is low for the rest of the pile (bench/labeling.py
measures by how much): it is a floor to decide by, not a promise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bincls.labeling.model import Linear, calibrate, fit, out_of_sample_logits, sigmoid

CONFIDENT = 0.9  # `accept the confident guesses` takes guesses at least this probable (bench/labeling.py)
Z95 = 1.959963984540054
PRIOR_CLIP = (0.01, 0.99)


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


def guesses(x: np.ndarray, answered: np.ndarray, labels: np.ndarray) -> Guesses:
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
    prior = float(np.clip(guessed.mean(), *PRIOR_CLIP))
    p1 = sigmoid(z + math.log(prior / (1 - prior)))
    return Guesses(p1, Linear(model.w, model.b, temperature), oos, prior)


@dataclass(frozen=True)
class AccuracyEstimate:
    right: int
    answered: int
    accuracy: float
    interval: tuple[float, float]
    per_class: tuple[tuple[int, int], tuple[int, int]]  # (right, answered) per class

    def to_dict(self, names: list[str]) -> dict:
        return {
            "accuracy": self.accuracy,
            "interval": list(self.interval),
            "right": self.right,
            "answered": self.answered,
            "per_class": {names[c]: {"right": r, "answered": n, "recall": r / n if n else math.nan}
                          for c, (r, n) in enumerate(self.per_class)},
            "how": "each answered image guessed by a model fitted without it (stratified 5-fold), Wilson 95% "
                   "interval; the session asks about the hard and rare images, so the rest of the pile is "
                   "usually guessed better than this",
        }  # fmt: skip


def accuracy_estimate(g: Guesses, labels: np.ndarray) -> AccuracyEstimate | None:
    """How often a model that had not seen an answered image guessed it right; None before 2 of each."""
    if g.out_of_sample is None:
        return None
    labels = np.asarray(labels, dtype=int)
    right = (g.out_of_sample > 0) == (labels == 1)
    per_class = tuple((int(right[labels == c].sum()), int((labels == c).sum())) for c in (0, 1))
    n = len(labels)
    return AccuracyEstimate(int(right.sum()), n, float(right.mean()), wilson(int(right.sum()), n), per_class)
