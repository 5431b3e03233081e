"""Calibration on the validation split: temperature scaling, the decision threshold, calibration error.

Temperature scaling (Guo et al. 2017) divides the logit by one number fitted to minimise the
validation log-loss, here with Platt's bias beside it: the ranking (and AUROC) stays, the probabilities
become honest. The threshold is chosen on the calibrated probabilities to maximise balanced accuracy,
so imbalanced data is classified at the right place rather than at 0.5.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import binary_calibration_error

TEMPERATURE_RANGE = (0.05, 20.0)
ECE_BINS = 15


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0, bias: float = 0.0) -> float:
    """Mean binary cross-entropy of sigmoid(logits / temperature + bias)."""
    return F.binary_cross_entropy_with_logits(logits.float() / temperature + bias, labels.float()).item()


def fit_calibration(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(temperature, bias) minimising the log-loss of sigmoid(logits / temperature + bias); (1, 0) when
    there is nothing to fit.

    The bias is Platt's: a model trained with class weights (bincls balances the loss by default)
    has its logits shifted by the weight, which a temperature alone cannot take back.
    """
    logits, labels = logits.detach().float().flatten(), labels.detach().float().flatten()
    if logits.numel() < 2 or labels.min() == labels.max():
        return 1.0, 0.0
    log_t = torch.zeros(1, requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t, bias], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(logits / log_t.exp() + bias, labels)
        loss.backward()
        return loss

    opt.step(closure)
    t, b = float(log_t.detach().exp()), float(bias.detach())
    if not (math.isfinite(t) and math.isfinite(b)):
        return 1.0, 0.0
    return float(min(max(t, TEMPERATURE_RANGE[0]), TEMPERATURE_RANGE[1])), b


def balanced_accuracy(probs: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Mean of the two classes' recalls at `threshold` (NaN when a class is absent)."""
    pred = probs >= threshold
    recalls = [float((pred[labels == c] == bool(c)).mean()) for c in (0, 1) if (labels == c).any()]
    return float(np.mean(recalls)) if len(recalls) == 2 else math.nan


def choose_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """The threshold with the highest balanced accuracy on these (calibrated) probabilities.

    With calibrated probabilities, balanced accuracy is best at the share of the second class (the
    prior): that is where the choice starts. The validation images move it only when another
    threshold classifies more than one image's worth better, so a threshold is not fitted to the
    noise of a small validation split. Candidates are midpoints between neighbouring probabilities.
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels).astype(int)
    counts = np.bincount(labels, minlength=2)
    if counts.min() == 0:
        return 0.5
    prior = float(counts[1] / counts.sum())
    values = np.unique(probs)
    candidates = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
    scores = np.array([balanced_accuracy(probs, labels, t) for t in candidates])
    one_image = 0.5 / counts.min()  # what one image of the smaller class is worth in balanced accuracy
    if scores.max() <= balanced_accuracy(probs, labels, prior) + one_image:
        return prior
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(candidates[best[np.argmin(np.abs(candidates[best] - prior))]])


def calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Expected calibration error (torchmetrics, equal-width bins, L1)."""
    if probs.numel() == 0:
        return math.nan
    return float(binary_calibration_error(probs.float().flatten(), labels.long().flatten(), n_bins=bins))
