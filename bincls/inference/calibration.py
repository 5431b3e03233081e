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
from scipy.optimize import minimize
from scipy.special import expit
from torchmetrics.functional.classification import binary_calibration_error

TEMPERATURE_RANGE = (0.2, 20.0)
BIAS_RANGE = (-10.0, 10.0)
ECE_BINS = 15


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0, bias: float = 0.0) -> float:
    """Mean binary cross-entropy of sigmoid(logits / temperature + bias)."""
    return F.binary_cross_entropy_with_logits(logits.float() / temperature + bias, labels.float()).item()


def fit_calibration(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(temperature, bias) minimising the log-loss of sigmoid(logits / temperature + bias); (1, 0) when
    there is nothing to fit or the fit is no better on these images than leaving the logits alone.

    The bias is Platt's: a model trained with class weights (bincls balances the loss by default)
    has its logits shifted by the weight, which a temperature alone cannot take back. As in Platt's
    method the 0/1 targets are pulled in by one pseudo-image per class, so that a validation split the
    model gets (almost) all right cannot drive the temperature to zero; the fit is bounded by scipy's
    L-BFGS-B to temperatures in TEMPERATURE_RANGE and biases in BIAS_RANGE.
    """
    z = logits.detach().double().flatten().numpy()
    y = labels.detach().double().flatten().numpy()
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    if len(z) < 2 or n_pos == 0 or n_neg == 0:
        return 1.0, 0.0
    target = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        log_t, b = params
        a = z * np.exp(-log_t) + b
        p = expit(a)
        value = float(np.mean(np.logaddexp(0, a) - target * a))
        grad_a = (p - target) / len(z)
        return value, np.array([float(np.sum(grad_a * -z * np.exp(-log_t))), float(np.sum(grad_a))])

    bounds = [tuple(np.log(TEMPERATURE_RANGE)), BIAS_RANGE]
    fit = minimize(loss, np.zeros(2), jac=True, method="L-BFGS-B", bounds=bounds)
    t, b = float(np.exp(fit.x[0])), float(fit.x[1])
    if not (math.isfinite(t) and math.isfinite(b)) or nll(logits, labels, t, b) > nll(logits, labels):
        return 1.0, 0.0
    return t, b


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
    candidates = np.clip(candidates, 0.01, 0.99)  # never "always one class"
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
