"""The pile's features as the session uses them: unit length, centred, projected on their main axes.

Pretrained features have 1,280 or more dimensions; 128 principal axes keep what a linear model on a few
hundred answers can use (test accuracy on the shared piles is the same at 32, 64, 128, 256 and all
dimensions: bench/labeling.py) and make every fit, distance and k-means 10x cheaper.
"""

from __future__ import annotations

import numpy as np

DIMENSIONS = 128
PCA_SAMPLE = 5000  # rows the axes are fitted on: a pile of a million is projected, not decomposed whole
SEED = 0


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def project(features: np.ndarray, dimensions: int = DIMENSIONS) -> np.ndarray:
    """[N, min(D, dimensions)] float32: unit rows, centred, on the main axes of (a sample of) the pile."""
    x = unit_rows(features)
    if len(x) == 0:
        return np.zeros((0, min(x.shape[1], dimensions)), np.float32)
    rng = np.random.default_rng(SEED)
    sample = x if len(x) <= PCA_SAMPLE else x[np.sort(rng.choice(len(x), PCA_SAMPLE, replace=False))]
    mean = sample.mean(axis=0)
    if x.shape[1] <= dimensions or len(x) < 3:
        return (x - mean).astype(np.float32)
    centred = (sample - mean).astype(np.float64)
    values, vectors = np.linalg.eigh(centred.T @ centred)
    axes = vectors[:, np.argsort(values)[::-1][:dimensions]]
    # each axis's sign fixed (its largest entry positive): the same pile always projects the same way
    axes *= np.where(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])] < 0, -1.0, 1.0)
    return ((x - mean) @ axes.astype(np.float32)).astype(np.float32)
