"""The session's classifier: an L2-regularised logistic regression on the pile's features, in numpy.

Fitted by Newton's method with a backtracking line search (a few milliseconds for a few hundred answers
in 128 dimensions). Hand-written rather than scikit-learn's because importing scikit-learn alone costs
1.5-3 s on this machine, and a `bincls label --next` call has 5 s in all; the fit is 30 lines.
Probabilities are temperature-scaled on out-of-sample logits of the answered images (`calibrate`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

C = 10.0  # inverse L2 strength; test accuracy on the shared piles barely moves from 1 to 30 (bench)
MAX_STEPS = 50


def one_blas_thread(fn):
    """Run `fn` with one BLAS thread: the session's matrices are small, and OpenBLAS's threads spin
    against each other on a busy machine (`eigh` of 144 x 144: 3 ms on one thread, 29 ms on two)."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapped


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


@dataclass(frozen=True)
class Linear:
    """w . x + b; `temperature` divides the logit before the sigmoid."""

    w: np.ndarray
    b: float
    temperature: float = 1.0

    def logits(self, x: np.ndarray) -> np.ndarray:
        return (x @ self.w + self.b) / self.temperature

    def proba(self, x: np.ndarray) -> np.ndarray:
        """P(label 1) for each row of `x`."""
        return sigmoid(self.logits(x))


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Each class weighs the same in the loss, however few its answers (scikit-learn's "balanced")."""
    counts = np.bincount(y, minlength=2).astype(np.float64)
    return len(y) / (2.0 * counts[y])


def fit(x: np.ndarray, y: np.ndarray, c: float = C, weights: np.ndarray | None = None) -> Linear:
    """Minimise sum(weights * log loss) + |w|^2 / (2c); the intercept is not penalised."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    sw = balanced_weights(y.astype(int)) if weights is None else np.asarray(weights, dtype=np.float64)
    penalty = np.full(d + 1, 1.0 / c)
    penalty[-1] = 1e-8

    def objective(beta: np.ndarray) -> float:
        z = xb @ beta
        return float(np.sum(sw * (np.logaddexp(0.0, z) - y * z)) + 0.5 * np.sum(penalty * beta * beta))

    beta = np.zeros(d + 1)
    value = objective(beta)
    for _ in range(MAX_STEPS):
        p = sigmoid(xb @ beta)
        grad = xb.T @ (sw * (p - y)) + penalty * beta
        hess = (xb * (sw * p * (1 - p))[:, None]).T @ xb + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        t, decrease = 1.0, float(grad @ step)
        while True:  # backtracking: a full Newton step can overshoot on nearly separable answers
            trial = beta - t * step
            new = objective(trial)
            if new <= value - 1e-4 * t * decrease or t < 1e-6:
                break
            t *= 0.5
        beta, value = trial, new
        if np.max(np.abs(t * step)) < 1e-7:
            break
    return Linear(beta[:-1], float(beta[-1]))


def folds_for(y: np.ndarray, k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Stratified folds (index arrays) for out-of-sample predictions; fewer when a class has fewer answers."""
    rng = np.random.default_rng(seed)
    k = int(min(k, np.bincount(y, minlength=2).min()))
    if k < 2:
        return []
    folds: list[list[int]] = [[] for _ in range(k)]
    for label in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == label))
        for i, j in enumerate(idx):
            folds[i % k].append(int(j))
    return [np.array(sorted(f)) for f in folds]


def out_of_sample_logits(x: np.ndarray, y: np.ndarray, c: float = C, k: int = 5) -> np.ndarray | None:
    """Each answered image's logit from a model fitted without it (stratified k-fold); None when a class
    has fewer than 2 answers."""
    folds = folds_for(y, k)
    if not folds:
        return None
    out = np.zeros(len(y))
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        out[test] = fit(x[train], y[train], c).logits(x[test])
    return out


def calibrate(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that makes out-of-sample probabilities honest (weighted log loss, classes balanced),
    searched on a grid from 0.25 to 8: few answers cannot place it finer, and a grid never diverges."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 49))
    sw = balanced_weights(y)
    losses = [np.sum(sw * (np.logaddexp(0.0, logits / t) - y * logits / t)) for t in grid]
    return float(grid[int(np.argmin(losses))])
