"""Binary classification metrics from probabilities and labels, computed by torchmetrics."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    binary_confusion_matrix,
    binary_f1_score,
    binary_precision,
    binary_recall,
)


def binary_metrics(
    logits: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5, pos_weight: float | None = None
) -> dict:
    """accuracy, balanced accuracy, precision, recall, f1, auroc, loss, n, the spread of the
    probabilities (`p_std`: 0 when the model gives every image the same one) and the confusion matrix
    [[tn, fp], [fn, tp]].

    The loss is plain (unweighted) BCE unless `pos_weight` is given, so runs with different class
    weights compare fairly. AUROC is NaN when only one class is present (it is undefined then).
    """
    logits = logits.detach().float().flatten().cpu()
    target = labels.detach().flatten().cpu().long()
    n = int(target.numel())
    if n == 0:
        return {"n": 0}
    probs = torch.sigmoid(logits)
    pw = torch.tensor(pos_weight) if pos_weight else None
    loss = F.binary_cross_entropy_with_logits(logits, target.float(), pos_weight=pw).item()
    cm = binary_confusion_matrix(probs, target, threshold=threshold)
    both = bool(target.min() != target.max())
    (tn, fp), (fn, tp) = cm.tolist()
    recalls = [tn / (tn + fp) if tn + fp else math.nan, tp / (tp + fn) if tp + fn else math.nan]
    return {
        "n": n,
        "loss": loss,
        "accuracy": binary_accuracy(probs, target, threshold=threshold).item(),
        "balanced_accuracy": sum(recalls) / 2 if both else math.nan,
        "precision": binary_precision(probs, target, threshold=threshold).item(),
        "recall": binary_recall(probs, target, threshold=threshold).item(),
        "f1": binary_f1_score(probs, target, threshold=threshold).item(),
        "auroc": binary_auroc(probs, target).item() if both else math.nan,
        "p_std": probs.std(unbiased=False).item(),
        "confusion_matrix": cm.tolist(),
        "threshold": threshold,
    }
