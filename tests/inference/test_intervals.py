"""Error bars: Wilson intervals, the bootstrap AUROC interval, McNemar, and evaluate's JSON."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from bincls.inference.intervals import (
    auroc_interval,
    balanced_accuracy_interval,
    fmt_interval,
    mcnemar,
    proportion_intervals,
    wilson,
)
from bincls.paths import PROJECT_ROOT


def test_wilson_matches_the_textbook_and_reads_as_the_issue_asks():
    low, high = wilson(3, 6)
    assert (round(low, 2), round(high, 2)) == (0.19, 0.81)
    assert fmt_interval(0.5, (low, high), 6) == "0.50 (0.19-0.81) on 6 images"
    assert all(math.isnan(v) for v in wilson(0, 0))
    assert wilson(100, 100)[1] == pytest.approx(1.0) and wilson(100, 100)[0] > 0.95


def test_proportion_intervals_hold_their_metric():
    cis = proportion_intervals([[40, 10], [5, 45]])  # tn fp / fn tp
    values = {"accuracy_ci": 85 / 100, "precision_ci": 45 / 55, "recall_ci": 45 / 50, "f1_ci": 90 / 105}
    for key, value in values.items():
        low, high = cis[key]
        assert low < value < high, key


def test_the_balanced_accuracy_interval_holds_it_and_covers_95_percent():
    """MOVER on the two recalls: it holds the estimate, stays in [0, 1], and on simulated test splits
    (30 of one class, 120 of the other: the imbalance balanced accuracy is for) covers the true value about
    95% of the time."""
    low, high = proportion_intervals([[40, 10], [5, 45]])["balanced_accuracy_ci"]
    assert low < (40 / 50 + 45 / 50) / 2 < high
    assert balanced_accuracy_interval([[30, 0], [0, 120]])[1] == 1.0
    assert all(math.isnan(v) for v in balanced_accuracy_interval([[0, 0], [5, 45]]))
    rng = np.random.default_rng(0)
    spec, sens, covered, trials = 0.8, 0.95, 0, 800
    for _ in range(trials):
        tn, tp = rng.binomial(30, spec), rng.binomial(120, sens)
        low, high = balanced_accuracy_interval([[tn, 30 - tn], [120 - tp, tp]])
        covered += low <= (spec + sens) / 2 <= high
    assert 0.93 <= covered / trials <= 0.97  # measured: 0.9475 (seed 0)


def test_the_auroc_interval_narrows_with_more_images_and_holds_the_auroc():
    rng = np.random.default_rng(0)
    widths = []
    for n in (40, 400):
        y = np.r_[np.zeros(n), np.ones(n)]
        s = np.r_[rng.normal(0, 1, n), rng.normal(1.5, 1, n)]
        low, high = auroc_interval(s, y)
        from sklearn.metrics import roc_auc_score

        assert low < roc_auc_score(y, s) < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2
    assert all(math.isnan(v) for v in auroc_interval(np.ones(4), np.zeros(4)))


def test_mcnemar_tells_a_real_difference_from_noise():
    a = np.array([True] * 90 + [False] * 10)
    assert mcnemar(a, a) == 1.0
    b = a.copy()
    b[:2] = False  # two images apart on a hundred: noise
    assert mcnemar(a, b) > 0.4
    c = np.array([True] * 60 + [False] * 40)
    assert mcnemar(a, c) < 0.001


def test_evaluate_json_reports_intervals_and_calibration(sample_run):
    out = subprocess.run([sys.executable, "-m", "bincls", "evaluate", str(sample_run.path), "--json"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)  # fmt: skip
    m = json.loads(out.stdout)
    for key in ("accuracy_ci", "balanced_accuracy_ci", "precision_ci", "recall_ci", "f1_ci", "auroc_ci"):
        assert len(m[key]) == 2, key
    low, high = m["accuracy_ci"]
    assert low <= m["accuracy"] <= high
    assert {"ece", "ece_uncalibrated", "balanced_accuracy", "temperature", "tta"} <= set(m)
