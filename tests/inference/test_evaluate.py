"""Evaluation beyond the CLI: thresholds without the model, curves, calibration, saved thresholds, predict."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bincls import BinclsError
from bincls.inference.evaluate import (
    at_threshold,
    both_classes,
    calibration,
    cell_images,
    evaluate,
    most_wrong,
    pr_curve,
    roc_curve,
    save_threshold,
)
from bincls.inference.predict import Predictor, thumbnail_data_uri
from bincls.paths import SAMPLE_DATA
from bincls.runs.folder import RunFolder
from bincls.training.config import TrainConfig
from bincls.training.loop import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One finished one-epoch run on the sample, trained once for the module."""
    base = tmp_path_factory.mktemp("eval-runs")
    cfg = TrainConfig(data=[str(SAMPLE_DATA)], epochs=1, img_size=48, workers=0)
    return train(cfg, runs_dir=base).run.path


@pytest.fixture
def run(trained, tmp_path) -> RunFolder:
    """A private copy: tests that save a threshold do not change the others' run."""
    dest = tmp_path / trained.name
    shutil.copytree(trained, dest)
    return RunFolder(dest)


@pytest.fixture(scope="module")
def ev(trained):
    return evaluate(trained)


def test_evaluation_keeps_logits_and_labels_for_later(ev):
    n = ev.metrics["n"]
    assert ev.source == "test split" and n == len(ev.table) > 0
    assert ev.logits.shape == (n,) and set(np.unique(ev.labels)) <= {0, 1}
    assert np.allclose(1 / (1 + np.exp(-ev.logits)), ev.table["probability"], atol=1e-6)
    assert [ev.class_names[v] for v in ev.labels] == list(ev.table["true"])
    assert ev.threshold == 0.5 and ev.run_path


def test_same_threshold_gives_the_same_metrics(ev):
    again = at_threshold(ev, ev.threshold)
    for key in ("accuracy", "precision", "recall", "f1", "auroc", "loss", "confusion_matrix"):
        a, b = again.metrics[key], ev.metrics[key]
        assert (math.isnan(a) and math.isnan(b)) if isinstance(a, float) and math.isnan(a) else a == b


def test_extreme_thresholds_call_everything_one_class(ev):
    n1 = int(ev.labels.sum())
    n0 = len(ev.labels) - n1
    everything_second = at_threshold(ev, 0.0)
    assert everything_second.metrics["confusion_matrix"] == [[0, n0], [0, n1]]
    assert set(everything_second.table["predicted"]) == {ev.class_names[1]}
    assert everything_second.metrics["recall"] == 1.0
    assert ev.table["predicted"].nunique() >= 1, "the original table is left as it was"
    with pytest.raises(BinclsError, match="probability"):
        at_threshold(ev, 1.5)


def test_roc_and_precision_recall_curves(ev):
    assert both_classes(ev)
    roc = roc_curve(ev)
    assert list(roc.columns) == ["fpr", "tpr", "threshold"]
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].is_monotonic_increasing
    assert (roc.iloc[0]["fpr"], roc.iloc[-1]["fpr"], roc.iloc[-1]["tpr"]) == (0.0, 1.0, 1.0)
    # The area under the curve drawn is the AUROC torchmetrics reports.
    area = float(np.sum(np.diff(roc["fpr"]) * roc["tpr"].to_numpy()[1:]))
    assert area == pytest.approx(ev.metrics["auroc"], abs=1e-6)
    pr = pr_curve(ev)
    assert pr["precision"].between(0, 1).all() and pr["recall"].between(0, 1).all()
    assert pr["recall"].iloc[-1] == 0 and math.isnan(pr["threshold"].iloc[-1])


def test_calibration_bins_cover_every_image(ev):
    table, ece = calibration(ev, bins=10)
    assert len(table) == 10 and table["count"].sum() == ev.metrics["n"]
    assert table["bin_low"].iloc[0] == 0 and table["bin_high"].iloc[-1] == 1
    used = table[table["count"] > 0]
    assert used["mean_probability"].between(used["bin_low"], used["bin_high"]).all()
    assert used["observed"].between(0, 1).all() and 0 <= ece <= 1
    # The expected calibration error is the count-weighted gap between the two columns.
    gap = (used["count"] * (used["mean_probability"] - used["observed"]).abs()).sum() / used["count"].sum()
    assert ece == pytest.approx(gap, abs=1e-5)


def test_most_wrong_and_confusion_cells(ev):
    wrong = ev.table[ev.table["true"] != ev.table["predicted"]]
    worst = most_wrong(ev, k=3)
    assert len(worst) == min(3, len(wrong))
    assert (worst["true"] != worst["predicted"]).all()  # a right answer is never "most wrong"
    if len(worst):
        assert worst["loss"].is_monotonic_decreasing and worst["loss"].iloc[0] == wrong["loss"].max()
    everything_right = at_threshold(ev, ev.threshold)
    everything_right.table["predicted"] = everything_right.table["true"]
    assert most_wrong(everything_right).empty
    a, b = ev.class_names
    cells = [cell_images(ev, t, p) for t in (a, b) for p in (a, b)]
    assert sum(len(c) for c in cells) == len(ev.table)
    (tn, fp), (fn, tp) = ev.metrics["confusion_matrix"]
    assert [len(c) for c in cells] == [tn, fp, fn, tp]


def test_results_csv_has_the_four_columns(ev):
    table = pd.read_csv(io.BytesIO(ev.results_csv()))
    assert list(table.columns) == ["path", "true", "predicted", "probability"]
    assert len(table) == ev.metrics["n"] and all(Path(p).is_file() for p in table["path"])


def test_evaluate_on_another_folder(trained):
    other = evaluate(trained, data=[str(SAMPLE_DATA)])
    assert other.metrics["n"] == 60 and other.source == str(SAMPLE_DATA)
    assert set(other.table["true"]) == {"ants", "bees"}


def test_saved_threshold_is_used_by_evaluate_and_predict(run):
    where = save_threshold(run.path, 0.37)
    assert json.loads(where.read_text())["threshold"] == 0.37
    assert run.config()["model"] == "small-cnn", "the rest of config.json is kept"
    assert evaluate(run.path).metrics["threshold"] == pytest.approx(0.37)
    assert Predictor(run.best_checkpoint).threshold == pytest.approx(0.37)
    assert Predictor(run.best_checkpoint, threshold=0.9).threshold == 0.9, "an explicit threshold wins"


def test_saving_a_threshold_needs_a_run_and_a_probability(run, tmp_path):
    loose = tmp_path / "loose.pt"
    shutil.copy(run.best_checkpoint, loose)
    with pytest.raises(BinclsError, match="not in a run folder"):
        save_threshold(loose, 0.4)
    with pytest.raises(BinclsError, match="probability"):
        save_threshold(run.path, -0.1)
    assert Predictor(loose).threshold == 0.5, "a checkpoint outside a run uses its own threshold"


def test_predict_explained_reports_bad_files_and_predicts_the_rest(run):
    pred = Predictor(run.best_checkpoint)
    good = sorted((SAMPLE_DATA / "bees").iterdir())[:2]
    data = good[0].read_bytes()
    sources = [good[0].read_bytes(), b"", b"plain text, not an image", data[: len(data) // 3], str(good[1])]
    names = ["a.jpg", "empty.jpg", "text.jpg", "cut.jpg", "b.jpg"]
    out = pred.predict_explained(sources, names)
    errors = {e.prediction.source: e.prediction.error for e in out if e.prediction.error}
    assert set(errors) == {"empty.jpg", "text.jpg", "cut.jpg"}
    assert "empty" in errors["empty.jpg"] and "not an image" in errors["text.jpg"]
    assert "truncated" in errors["cut.jpg"]
    for item in (out[0], out[4]):
        p = item.prediction
        assert p.class_name in pred.class_names and 0.5 <= p.probability <= 1
        assert item.heatmap.shape == (48, 48) and 0 <= item.heatmap.min() and item.heatmap.max() <= 1
        assert item.overlay().size == item.image.size and max(item.image.size) <= 448
    # The same image gives the same probability as the plain predict path.
    assert out[0].prediction.p_class1 == pytest.approx(pred.predict(good[0].read_bytes()).p_class1, abs=1e-6)


def test_thumbnail_data_uri():
    uri = thumbnail_data_uri(Image.new("RGB", (300, 200), "red"), side=64)
    assert uri.startswith("data:image/jpeg;base64,") and len(uri) < 5000


def test_evaluating_a_runs_test_split_is_kept_for_the_runs_table(run):
    from bincls.runs.results import TEST_RESULT_FILE, saved_test_result
    from bincls.runs.summary import summarize

    (run.path / TEST_RESULT_FILE).unlink(missing_ok=True)  # the module's evaluation of the original
    assert summarize(run).test_accuracy is None
    ev = evaluate(run.path, threshold=0.3)  # not at the saved threshold: not the run's test accuracy
    assert saved_test_result(run) is None
    ev = evaluate(run.path)
    assert summarize(run).test_accuracy == pytest.approx(ev.metrics["accuracy"])
    assert saved_test_result(run)["n"] == ev.metrics["n"]
