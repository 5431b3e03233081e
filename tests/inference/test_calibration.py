"""Calibration on validation: temperature and bias, the balanced-accuracy threshold, calibration error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bincls.inference.calibration import (
    balanced_accuracy,
    calibration_error,
    choose_threshold,
    fit_calibration,
)


def _synthetic(n: int, temperature: float, bias: float, seed: int = 0):
    """Labels drawn from sigmoid(z / temperature + bias): the calibration that fits them is known."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator=g) * 4
    labels = (torch.rand(n, generator=g) < torch.sigmoid(z / temperature + bias)).float()
    return z, labels


def test_the_fitted_calibration_recovers_temperature_and_bias():
    z, y = _synthetic(20_000, temperature=2.5, bias=-0.8)
    t, b = fit_calibration(z, y)
    assert t == pytest.approx(2.5, rel=0.08) and b == pytest.approx(-0.8, abs=0.08)
    before = calibration_error(torch.sigmoid(z), y)
    after = calibration_error(torch.sigmoid(z / t + b), y)
    assert after < 0.02 < before


def test_nothing_to_fit_gives_the_identity():
    assert fit_calibration(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0])) == (1.0, 0.0)
    assert fit_calibration(torch.tensor([]), torch.tensor([])) == (1.0, 0.0)


def test_the_threshold_starts_at_the_prior_and_moves_only_for_a_real_gain():
    # Calibrated probabilities of an imbalanced set: a quarter positives.
    rng = np.random.default_rng(0)
    y = np.array([0] * 300 + [1] * 100)
    p = np.clip(np.where(y == 1, rng.normal(0.55, 0.15, 400), rng.normal(0.12, 0.1, 400)), 0, 1)
    t = choose_threshold(p, y)
    assert balanced_accuracy(p, y, t) >= balanced_accuracy(p, y, 0.5) and t < 0.5
    # Noise worth less than one image does not move it off the prior.
    y2, p2 = np.array([0, 0, 0, 1, 1, 1]), np.array([0.1, 0.2, 0.6, 0.4, 0.8, 0.9])
    assert choose_threshold(p2, y2) == pytest.approx(0.5)
    assert choose_threshold(np.array([0.2, 0.3]), np.array([1, 1])) == 0.5  # one class: no choice


def test_balanced_accuracy_weighs_the_classes_alike():
    y = np.array([0] * 9 + [1])
    p = np.zeros(10)
    assert balanced_accuracy(p, y, 0.5) == pytest.approx(0.5)  # 90% accuracy, but class 1 is never found
