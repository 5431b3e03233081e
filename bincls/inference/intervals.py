"""Error bars: how sure a metric measured on a few hundred test images is.

Proportions (accuracy, precision, recall, F1, specificity) get Wilson score intervals (scipy), which
stay inside [0, 1] and are honest for small counts: 3 right of 6 is "0.50 (0.19-0.81)". Balanced
accuracy, the mean of the two classes' recalls, combines their Wilson intervals by MOVER (Zou and Donner,
2008). AUROC is not a proportion: it gets a percentile bootstrap, resampling each class on its own so
that every resample still has both classes (scipy's bootstrap cannot stratify). Two runs evaluated on
the same images are compared with McNemar's exact test on the images only one of them got right.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 1000


def wilson(successes: int, trials: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of successes / trials (NaN, NaN when there are no trials)."""
    if trials <= 0:
        return math.nan, math.nan
    ci = binomtest(int(successes), int(trials)).proportion_ci(method="wilson", confidence_level=level)
    return float(ci.low), float(ci.high)


def proportion_intervals(confusion: list[list[int]]) -> dict[str, tuple[float, float]]:
    """Wilson intervals of the metrics a confusion matrix [[tn, fp], [fn, tp]] gives.

    F1 is 2TP / (2TP + FP + FN): its interval treats that as a proportion, an approximation that is
    close for the sizes of a test split.
    """
    (tn, fp), (fn, tp) = confusion
    return {
        "accuracy_ci": wilson(tp + tn, tp + tn + fp + fn),
        "balanced_accuracy_ci": balanced_accuracy_interval(confusion),
        "precision_ci": wilson(tp, tp + fp),
        "recall_ci": wilson(tp, tp + fn),
        "specificity_ci": wilson(tn, tn + fp),
        "f1_ci": wilson(2 * tp, 2 * tp + fp + fn),
    }


def balanced_accuracy_interval(confusion: list[list[int]], level: float = LEVEL) -> tuple[float, float]:
    """The interval of (specificity + recall) / 2 by MOVER (method of variance estimates recovery, Zou and
    Donner 2008): the two recalls are independent proportions, each with its Wilson interval, and the
    distances from each estimate to its limits add in quadrature. (NaN, NaN) without both classes."""
    (tn, fp), (fn, tp) = confusion
    if tn + fp == 0 or tp + fn == 0:
        return math.nan, math.nan
    parts = [(tn / (tn + fp), *wilson(tn, tn + fp, level)), (tp / (tp + fn), *wilson(tp, tp + fn, level))]
    centre = sum(p for p, _, _ in parts) / 2
    below = math.sqrt(sum((p - lo) ** 2 for p, lo, _ in parts)) / 2
    above = math.sqrt(sum((hi - p) ** 2 for p, _, hi in parts)) / 2
    return max(0.0, centre - below), min(1.0, centre + above)


def auroc_interval(scores: np.ndarray, labels: np.ndarray, level: float = LEVEL,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """Percentile bootstrap interval of the AUROC, resampling within each class."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(int)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if len(pos) == 0 or len(neg) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    for i in range(resamples):
        s = np.r_[scores[rng.choice(pos, len(pos))], scores[rng.choice(neg, len(neg))]]
        stats[i] = roc_auc_score(y, s)
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def mcnemar(right_a: np.ndarray, right_b: np.ndarray) -> float:
    """Exact McNemar p-value for two classifiers' right/wrong on the same images (1.0 when they never
    disagree): small means their accuracies really differ."""
    a_only = int(np.sum(right_a & ~right_b))
    b_only = int(np.sum(~right_a & right_b))
    if a_only + b_only == 0:
        return 1.0
    return float(binomtest(a_only, a_only + b_only, 0.5).pvalue)


def fmt_interval(value: float, ci: tuple[float, float], n: int | None = None, digits: int = 2) -> str:
    """"0.50 (0.19-0.81) on 6 images"."""
    if value is None or not math.isfinite(value):
        return "–"
    low, high = ci
    text = f"{value:.{digits}f}"
    if math.isfinite(low) and math.isfinite(high):
        text += f" ({low:.{digits}f}-{high:.{digits}f})"
    return text + (f" on {n} images" if n is not None else "")
