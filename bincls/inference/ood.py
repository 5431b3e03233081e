"""Out-of-distribution ("neither class") detection: is an image unlike every training image?

The detector is the k-th nearest neighbour's cosine distance from the image's pooled features to the
training images' features (Sun et al. 2022, "Out-of-distribution detection with deep nearest
neighbors"). Measured against a class-conditional Mahalanobis distance on the same features
(bench/ood.py): both separate faces from insects and insects from faces alike in full dimensions, and
the Mahalanobis distance lost most of it once its 1280x1280 covariance was reduced to fit a checkpoint,
so k-NN it is. Its threshold is placed on the validation split at a stated false-flag rate. As a torch
module it travels in the checkpoint and into the ONNX export.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

K = 10
BANK_SIZE = 1024  # training features kept (a stratified sample beyond it): 5 MB for 1280-d features
FALSE_FLAG_RATE = 0.03  # share of validation images (of the training distribution) flagged as unlike it


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


class KnnDetector(nn.Module):
    """score(features) = 1 - cosine similarity to the k-th most similar training image (0: the same)."""

    def __init__(self, bank: torch.Tensor, k: int = K, threshold: float = 1.0, false_flag_rate: float = 0.0):
        super().__init__()
        self.register_buffer("bank", _normalize(bank.float()))
        self.k = int(min(k, len(bank)))
        self.threshold = float(threshold)
        self.false_flag_rate = float(false_flag_rate)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        sims = _normalize(features.float()) @ self.bank.T
        return 1.0 - torch.topk(sims, self.k, dim=1).values[:, -1]

    def state(self) -> dict:
        """For the checkpoint: plain tensors and numbers (weights_only loading takes them)."""
        return {"kind": "knn", "bank": self.bank.cpu(), "k": self.k, "threshold": self.threshold,
                "false_flag_rate": self.false_flag_rate}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict) -> KnnDetector:
        return cls(state["bank"], state["k"], state["threshold"], state.get("false_flag_rate", 0.0))


def sample_bank(features: torch.Tensor, labels: torch.Tensor, size: int = BANK_SIZE, seed: int = 0
                ) -> torch.Tensor:  # fmt: skip
    """At most `size` rows of `features`, each class kept in its share."""
    if len(features) <= size:
        return features
    rng = np.random.default_rng(seed)
    y = labels.numpy().astype(int)
    keep = []
    for c in (0, 1):
        rows = np.flatnonzero(y == c)
        keep.extend(rng.choice(rows, max(1, round(size * len(rows) / len(y))), replace=False).tolist())
    return features[sorted(keep)]


def fit_detector(train_features: torch.Tensor, train_labels: torch.Tensor, val_features: torch.Tensor,
                 false_flag_rate: float = FALSE_FLAG_RATE) -> KnnDetector:  # fmt: skip
    """A detector on the training features, its threshold at the validation scores' (1 - rate) quantile."""
    detector = KnnDetector(sample_bank(train_features, train_labels))
    with torch.no_grad():
        scores = detector(val_features).numpy()
    detector.threshold = float(np.quantile(scores, 1 - false_flag_rate)) if len(scores) else 1.0
    detector.false_flag_rate = false_flag_rate
    return detector


def load_detector(state: dict | None) -> KnnDetector | None:
    """The checkpoint's detector, or None when it has none (or one of a kind this release does not know)."""
    if not isinstance(state, dict) or state.get("kind") != "knn":
        return None
    return KnnDetector.from_state(state)
