"""Two runs on the same test images: McNemar's verdict, and refusals when the images or labels differ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bincls import BinclsError
from bincls.inference.compare import compare_runs
from bincls.inference.evaluate import Evaluation, calibration


def _evaluation(paths, true, predicted) -> Evaluation:
    table = pd.DataFrame({"path": paths, "true": true, "predicted": predicted, "probability": 0.5})
    return Evaluation({}, table, ["a", "b"], "test split", "best.pt")


def test_a_lopsided_disagreement_is_real_and_a_small_one_is_not():
    paths = [f"img{i}.png" for i in range(40)]
    true = ["a", "b"] * 20
    wrong = ["b" if t == "a" else "a" for t in true]
    good = _evaluation(paths, true, true)  # all 40 right
    bad = _evaluation(paths, true, wrong[:12] + true[12:])  # the first 12 wrong
    c = compare_runs(good, bad)
    assert (c.images, c.right_a, c.right_b, c.a_only, c.b_only) == (40, 40, 28, 12, 0)
    assert c.real and c.p_value == pytest.approx(2 * 0.5**12)
    close = compare_runs(good, _evaluation(paths, true, wrong[:2] + true[2:]))
    assert not close.real and close.p_value == pytest.approx(0.5)  # 2 images: chance does that often


def test_the_order_of_the_rows_does_not_matter():
    a = _evaluation(["x", "y", "z"], ["a", "b", "a"], ["a", "a", "a"])
    b = _evaluation(["z", "y", "x"], ["a", "b", "a"], ["b", "b", "a"])
    c = compare_runs(a, b)
    assert (c.a_only, c.b_only) == (1, 1)  # z: only a; y: only b


def test_other_images_or_other_labels_are_refused():
    a = _evaluation(["x", "y"], ["a", "b"], ["a", "b"])
    with pytest.raises(BinclsError, match="different images"):
        compare_runs(a, _evaluation(["x", "w"], ["a", "b"], ["a", "b"]))
    with pytest.raises(BinclsError, match="different labels"):
        compare_runs(a, _evaluation(["x", "y"], ["a", "a"], ["a", "b"]))


def test_the_uncalibrated_reliability_table_undoes_temperature_and_bias():
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 3, 200).astype(np.float32)
    labels = (rng.random(200) < 1 / (1 + np.exp(-raw / 3))).astype(np.int64)
    t, b = 3.0, 0.5
    ev = Evaluation({"temperature": t, "logit_bias": b}, pd.DataFrame({"path": range(200)}), ["a", "b"],
                    "test split", "best.pt", logits=raw / t + b, labels=labels)
    before, ece_before = calibration(ev, bins=10, calibrated=False)
    plain = Evaluation({}, ev.table, ["a", "b"], "test split", "best.pt", logits=raw, labels=labels)
    expected, ece_plain = calibration(plain, bins=10)
    assert ece_before == pytest.approx(ece_plain, abs=1e-6)
    pd.testing.assert_frame_equal(before, expected, atol=1e-5)
