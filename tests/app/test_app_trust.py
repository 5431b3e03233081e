"""How far to trust a result, through AppTest: images unlike the training ones on Predict, intervals and
the reliability diagram on Evaluate, McNemar's test for two runs on Runs."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from appsupport import button, open_page
from PIL import Image

from bincls.inference.compare import compare_runs
from bincls.inference.evaluate import at_threshold, evaluate
from bincls.inference.intervals import fmt_interval, wilson
from bincls.inference.predict import Predictor
from bincls.paths import SAMPLE_DATA, runs_dir
from bincls.runs.folder import RunFolder
from bincls.runs.names import set_run_name
from bincls.runs.summary import summarize
from bincls.training.config import TrainConfig
from bincls.training.loop import train
from pages.support.shared.formatting import md
from pages.support.shared.keys import EVAL_THRESHOLD, PREDICT_UPLOADS, RUNS_TABLE
from pages.support.shared.trust_views import UNLIKE, run_names, verdict


@pytest.fixture(scope="module")
def detector_run_src(tmp_path_factory):
    """A run on the sample with half of it for validation: enough (30) validation images for training
    to calibrate the model and fit its out-of-distribution detector."""
    base = tmp_path_factory.mktemp("detector-run")
    cfg = TrainConfig(data=[str(SAMPLE_DATA)], epochs=2, img_size=64, model="small-cnn", workers=0,
                      split=[0.4, 0.5, 0.1])  # fmt: skip
    return train(cfg, runs_dir=base).run.path


@pytest.fixture
def detector_run(detector_run_src) -> RunFolder:
    dest = runs_dir() / detector_run_src.name
    shutil.copytree(detector_run_src, dest)
    return RunFolder(dest)


def checkerboard(path) -> str:
    """Large black and white squares: nothing like a photo of an insect."""
    board = (np.indices((256, 256)).sum(0) // 32 % 2 * 255).astype(np.uint8)
    Image.fromarray(board, "L").convert("RGB").save(path)
    return str(path)


def test_an_image_unlike_the_training_ones_is_flagged_on_predict(detector_run, tmp_path):
    predictor = Predictor(detector_run.best_checkpoint)
    board = checkerboard(tmp_path / "checkerboard.png")
    bees = sorted((SAMPLE_DATA / "bees").iterdir())
    flags = predictor.predict_many([board, *map(str, bees)])
    # The page shows what the detector says; first make sure the detector really flags this one.
    assert flags[0].ood is True and flags[0].ood_score > predictor.scorer.ood_threshold
    ordinary = next(b for b, p in zip(bees, flags[1:]) if p.ood is False)

    at = open_page("predict")
    assert any("flagged as unlike the training images" in c.value for c in at.caption)
    files = [(p.name, p.read_bytes(), "image/png") for p in (tmp_path / "checkerboard.png", ordinary)]
    at.file_uploader(key=PREDICT_UPLOADS).set_value(files).run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and warnings[0].startswith(f"**{UNLIKE}** (out-of-distribution score")
    assert f"{flags[0].ood_score:,.0f}" in warnings[0]
    # The flagged image's headline is that warning: its class comes only after, as a guess (item 8);
    # the ordinary image's headline is its class and how sure.
    assert f"its guess: {flags[0].class_name}" in warnings[0]
    plain = flags[1 + bees.index(ordinary)]
    headlines = [m.value for m in at.markdown if " sure" in m.value]
    expected = f"**{plain.class_name}** · {plain.probability:.0%} sure  \n:gray[{md(ordinary.name)}]"
    assert headlines == [expected]
    table = at.dataframe[0].value
    assert table["Predicted"].iloc[0] == f"⚠ unlike the training images (guess: {flags[0].class_name})"
    assert table["Predicted"].iloc[1] == plain.class_name
    assert list(table[UNLIKE]) == ["⚠ yes", "no"]
    assert table["OOD score"].iloc[0] == pytest.approx(flags[0].ood_score, rel=1e-4)


def test_predict_says_when_a_model_has_no_detector(sample_run):
    assert Predictor(sample_run.best_checkpoint).scorer.ood_threshold is None  # 12 validation images
    at = open_page("predict")
    assert any("no out-of-distribution detector" in c.value for c in at.caption)


def test_evaluate_gives_every_metric_its_interval_and_draws_calibration_before_and_after(detector_run):
    ev = evaluate(detector_run.path)
    at = open_page("evaluate")
    # The matrix the page shows (its threshold slider holds the saved threshold to 0.01)
    (tn, fp), (fn, tp) = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["z"]
    n = tn + fp + fn + tp
    captions = [c.value for c in at.caption]
    accuracy = (tp + tn) / n
    assert fmt_interval(accuracy, wilson(tp + tn, n), n) in captions  # "0.50 (0.19-0.81) on 6 images"
    assert re.fullmatch(rf"\d\.\d\d \(\d\.\d\d-\d\.\d\d\) on {tp + fn} images",
                        next(c for c in captions if c.endswith(f"on {tp + fn} images")))  # recall
    assert sum(bool(re.fullmatch(r"(–|\d\.\d\d( \(\d\.\d\d-\d\.\d\d\))?) on \d+ images", c))
               for c in captions) == 6  # accuracy, balanced, precision, recall, F1, ROC-AUC  # fmt: skip
    # Balanced accuracy beside accuracy, with its interval, as `bincls evaluate --json` has them (item 5)
    labels = [m.label for m in at.metric]
    assert labels[:2] == ["Accuracy", "Balanced accuracy"]
    at_saved = at_threshold(ev, at.slider(key=EVAL_THRESHOLD).value).metrics
    balanced = fmt_interval(at_saved["balanced_accuracy"], at_saved["balanced_accuracy_ci"], n)
    assert balanced in captions and at.metric[1].value == f"{at_saved['balanced_accuracy']:.3f}"
    assert f"on {n} images" in captions  # the loss
    assert any(c.startswith("In brackets, the 95% interval") for c in captions)

    spec = json.loads(at.get("plotly_chart")[3].proto.spec)
    m = ev.metrics
    assert spec["layout"]["title"]["text"] == (
        f"Calibration: error {m['ece_uncalibrated']:.3f} before, {m['ece']:.3f} after"
    )
    names = [t["name"] for t in spec["data"]]
    assert names[1].startswith("before calibration") and names[2].startswith("after")
    note = next(c for c in captions if c.startswith("Images grouped by predicted probability"))
    assert f"temperature of {m['temperature']:.2f}" in note


@pytest.fixture(scope="module")
def paired_runs_src(tmp_path_factory):
    """Two runs of one split (same data and seed), one more with another seed: other test images."""
    base = tmp_path_factory.mktemp("paired-runs")
    for optimizer, seed in (("adam", 0), ("sgd", 0), ("adam", 1)):
        train(TrainConfig(data=[str(SAMPLE_DATA)], epochs=1, img_size=32, model="small-cnn", workers=0,
                          optimizer=optimizer, seed=seed), runs_dir=base)  # fmt: skip
    return base


@pytest.fixture
def paired_runs(paired_runs_src) -> list[RunFolder]:
    for src in paired_runs_src.iterdir():
        shutil.copytree(src, runs_dir() / src.name)
    return sorted((RunFolder(p) for p in runs_dir().iterdir()), key=lambda r: r.id, reverse=True)


def _select(at, rows: list[int]):
    at.session_state[RUNS_TABLE] = {"selection": {"rows": rows, "columns": []}}
    return at.run()


def test_runs_tests_two_runs_on_the_same_images_with_mcnemar(paired_runs):
    same = [i for i, r in enumerate(paired_runs) if r.config()["seed"] == 0]
    a, b = (paired_runs[i] for i in same)
    set_run_name(a, "with adam")  # McNemar names the runs by their names, not by the ends of their ids
    at = _select(open_page("runs"), same)
    assert not at.exception, [e.value for e in at.exception]
    assert "Is the difference real?" in [h.value for h in at.subheader]
    button(at, "Compare them on the 6 test images").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [b for b in at.button if b.label.startswith("Compare them")], "answered: the button goes"
    expected = compare_runs(evaluate(a.path), evaluate(b.path))
    said = next(m.value for m in at.markdown if m.value.startswith("On the same 6 test images"))
    named = ("**with adam**", f"**{md(summarize(b).title)}**")  # unnamed: model · recipe · date
    assert said == verdict(expected, *named) and run_names(a, b) == named
    assert b.id.rsplit("-", 1)[-1] not in said
    if expected.a_only + expected.b_only and not expected.real:
        assert "The test split is too small to tell these runs apart" in said


def test_runs_on_other_test_images_are_not_compared(paired_runs):
    seeds = [r.config()["seed"] for r in paired_runs]
    at = _select(open_page("runs"), [seeds.index(0), seeds.index(1)])
    assert any("tested on different images" in i.value for i in at.info)
    assert not [b for b in at.button if b.label.startswith("Compare them")]


def test_evaluate_starts_at_the_threshold_training_chose_as_predict_does(sample_run):
    import torch

    from bincls.models.checkpoint import read_checkpoint
    from pages.support.shared.keys import EVAL_THRESHOLD

    ckpt = read_checkpoint(sample_run.best_checkpoint)
    ckpt["threshold"] = 0.3  # as training's calibration places it on a larger validation split
    torch.save(ckpt, sample_run.best_checkpoint)
    assert Predictor(sample_run.best_checkpoint).threshold == 0.3
    at = open_page("evaluate")
    assert at.slider(key=EVAL_THRESHOLD).value == pytest.approx(0.3)
    assert any("threshold 0.30 (saved)" in c.value for c in at.caption)
