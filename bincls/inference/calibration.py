"""Calibration on the validation split: temperature scaling, the decision threshold, calibration error.

Temperature scaling (Guo et al. 2017) divides the logit by one number fitted to minimise the
validation log-loss: the ranking (and AUROC) stays, the probabilities become honest. The threshold is
chosen on the calibrated probabilities to maximise balanced accuracy, so imbalanced data is classified
at the right place rather than at 0.5.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import binary_calibration_error

TEMPERATURE_RANGE = (0.05, 20.0)
ECE_BINS = 15


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean binary cross-entropy of sigmoid(logits / temperature)."""
    return F.binary_cross_entropy_with_logits(logits.float() / temperature, labels.float()).item()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature that minimises the log-loss of `logits` (1.0 when there is nothing to fit)."""
    logits, labels = logits.detach().float().flatten(), labels.detach().float().flatten()
    if logits.numel() < 2 or labels.min() == labels.max():
        return 1.0
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    if not math.isfinite(t):
        return 1.0
    return float(min(max(t, TEMPERATURE_RANGE[0]), TEMPERATURE_RANGE[1]))


def balanced_accuracy(probs: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Mean of the two classes' recalls at `threshold` (NaN when a class is absent)."""
    pred = probs >= threshold
    recalls = [float((pred[labels == c] == bool(c)).mean()) for c in (0, 1) if (labels == c).any()]
    return float(np.mean(recalls)) if len(recalls) == 2 else math.nan


def choose_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """The threshold with the highest balanced accuracy; among equals, the one nearest 0.5.

    Candidates are the midpoints between neighbouring distinct probabilities, so the threshold sits
    between images rather than on one.
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels).astype(int)
    if len(set(labels.tolist())) < 2:
        return 0.5
    values = np.unique(probs)
    mids = (values[:-1] + values[1:]) / 2
    candidates = np.concatenate([[0.5], mids])
    scores = np.array([balanced_accuracy(probs, labels, t) for t in candidates])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


def calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Expected calibration error (torchmetrics, equal-width bins, L1)."""
    if probs.numel() == 0:
        return math.nan
    return float(binary_calibration_error(probs.float().flatten(), labels.long().flatten(), n_bins=bins))
