"""The pile's features as the session uses them: unit length, centred, projected on their main axes.

Pretrained features have 1,280 or more dimensions; 128 principal axes keep what a linear model on a few
hundred answers can use (test accuracy on the shared piles is the same at 32, 64, 128, 256 and all
dimensions: bench/labeling.py) and make every fit, distance and k-means 10x cheaper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIMENSIONS = 128
PCA_SAMPLE = 2000  # rows the axes are fitted on: a pile of a million is projected, not decomposed whole
OVERSAMPLE, POWER_STEPS = 16, 3  # randomized PCA (Halko et al. 2011): a few tenths of a second, seeded
SEED = 0
BLOCK = 50_000  # rows projected at a time


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _orthonormal(y: np.ndarray) -> np.ndarray:
    """Columns of `y` made orthonormal through the eigenvectors of the small Gram matrix (Cholesky-QR
    style): LAPACK's QR of a tall matrix is 10x slower on two busy cores."""
    values, vectors = np.linalg.eigh(y.T @ y)
    values = np.maximum(values, values.max() * 1e-12)
    return y @ (vectors / np.sqrt(values))


def main_axes(centred: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """[D, k] the first k principal axes of the rows of `centred`, by randomized SVD (a few products with
    the data and eigen-decompositions of (k+16) x (k+16) matrices; numpy's `eigh` of a 1280 x 1280
    covariance takes seconds on two busy cores)."""
    a = centred.astype(np.float64)
    q = _orthonormal(a @ rng.standard_normal((a.shape[1], min(k + OVERSAMPLE, a.shape[1]))))
    for _ in range(POWER_STEPS):
        q = _orthonormal(a @ (a.T @ q))
    b = q.T @ a  # [k+16, D]: the data's main directions live in its row space
    values, vectors = np.linalg.eigh(b @ b.T)
    order = np.argsort(values)[::-1][:k]
    axes = (b.T @ vectors[:, order]) / np.sqrt(np.maximum(values[order], 1e-24))
    # each axis's sign fixed (its largest entry positive): the same pile always projects the same way
    return axes * np.where(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])] < 0, -1.0, 1.0)


@dataclass(frozen=True)
class Projection:
    """Unit rows, minus `mean`, onto `axes` (None: no projection, the features have few dimensions)."""

    mean: np.ndarray
    axes: np.ndarray | None

    def apply(self, features: np.ndarray) -> np.ndarray:
        """The projected rows, a block at a time: a million rows of float16 features never become float32
        all at once."""
        dims = features.shape[1] if self.axes is None else self.axes.shape[1]
        out = np.empty((len(features), dims), np.float32)
        for start in range(0, len(features), BLOCK):
            x = unit_rows(features[start : start + BLOCK]) - self.mean
            out[start : start + BLOCK] = x if self.axes is None else x @ self.axes
        return out


def fit_projection(features: np.ndarray, dimensions: int = DIMENSIONS) -> Projection:
    """The projection of the pile: its mean, and its main axes fitted on a seeded sample of its rows."""
    rng = np.random.default_rng(SEED)
    if len(features) == 0:
        return Projection(np.zeros(features.shape[1], np.float32), None)
    rows = np.arange(len(features))
    if len(rows) > PCA_SAMPLE:
        rows = np.sort(rng.choice(len(rows), PCA_SAMPLE, replace=False))
    sample = unit_rows(features[rows])
    mean = sample.mean(axis=0)
    if features.shape[1] <= dimensions:
        return Projection(mean, None)
    if len(sample) <= dimensions:
        return Projection(mean, _span_axes(sample - mean).astype(np.float32))
    return Projection(mean, main_axes(sample - mean, dimensions, rng).astype(np.float32))


def _span_axes(centred: np.ndarray) -> np.ndarray:
    """[D, r] the axes that span a small pile's rows (exact SVD, r <= the number of images): a pile of 60
    keeps everything its features can tell apart in 59 dimensions instead of 1,280, and an L2-penalised
    linear model on them is the same model (its weights lie in the rows' span), fitted ~100x faster."""
    _, values, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    axes = vt[values > values.max(initial=0.0) * 1e-6].T
    if axes.shape[1] == 0:
        axes = np.eye(centred.shape[1])[:, :1]
    return axes * np.where(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])] < 0, -1.0, 1.0)


def project(features: np.ndarray, dimensions: int = DIMENSIONS) -> np.ndarray:
    """[N, min(D, dimensions)] float32: unit rows, centred, on the main axes of (a sample of) the pile."""
    return fit_projection(features, dimensions).apply(features)
