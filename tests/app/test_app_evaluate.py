"""The Evaluate page through AppTest: metrics, the threshold slider, saving it, other folders, export."""

from __future__ import annotations

import json
import shutil

import pytest
from appsupport import button, open_page
from streamlit.testing.v1 import AppTest

from bincls.inference.predict import Predictor
from bincls.paths import SAMPLE_DATA
from pages.support.shared.keys import EVAL_CELL, EVAL_FOLDER, EVAL_SOURCE, EVAL_THRESHOLD


def matrix(at: AppTest) -> list[list[int]]:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    heat = spec["data"][0]
    assert heat["type"] == "heatmap" and spec["layout"]["title"]["text"].startswith("Confusion matrix")
    return heat["z"]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)




def test_shows_metrics_charts_and_galleries_for_the_finished_run(sample_run):
    at = open_page("evaluate")
    labels = ["Accuracy", "Balanced accuracy", "Precision", "Recall", "F1", "ROC-AUC", "Loss (BCE)"]
    assert [m.label for m in at.metric] == labels
    for label in labels:
        value = metric(at, label)
        assert value == "–" or 0 <= float(value) <= 10
    n = sum(map(sum, matrix(at)))
    assert n == 6, "the sample's test split: 10% of 60 images"
    assert any(f"{n} images (test split" in c.value for c in at.caption)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert titles[1].startswith("ROC curve") and titles[2].startswith("Precision-recall")
    assert titles[3].startswith("Calibration")
    for chart in at.get("plotly_chart")[1:]:
        layout = json.loads(chart.proto.spec)["layout"]
        assert layout["xaxis"]["title"]["text"] and layout["yaxis"]["title"]["text"]
    assert [h.value for h in at.subheader] == ["Most wrong", "Download", "Use this model elsewhere"]
    assert any(c.value.startswith("Click a cell") for c in at.caption)
    assert not at.error


def test_clicking_a_cell_shows_its_images(sample_run):
    at = open_page("evaluate")
    (tn, fp), (fn, tp) = matrix(at)
    # What the chart's click callback stores (the click itself is checked in the browser).
    at.session_state[EVAL_CELL] = ("ants", "bees")
    at.run()
    assert not at.exception
    assert at.subheader[0].value == f"True ants, predicted bees: {fp} images"
    shapes = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"].get("shapes", [])
    assert len(shapes) == 1, "the clicked cell is outlined"
    at.slider(key=EVAL_THRESHOLD).set_value(0.0).run()
    assert at.subheader[0].value == f"True ants, predicted bees: {tn + fp} images", "the cell stays"
    assert len(at.get("image")) >= tn + fp, "one picture per image of the cell, at least"
    button(at, "Hide").click().run()
    assert [h.value for h in at.subheader] == ["Most wrong", "Download", "Use this model elsewhere"]


def test_threshold_slider_changes_the_matrix_and_saving_writes_config(sample_run):
    at = open_page("evaluate")
    before = matrix(at)
    n0, n1 = sum(before[0]), sum(before[1])
    assert button(at, "Save threshold").disabled, "nothing to save at the saved threshold"
    at.slider(key=EVAL_THRESHOLD).set_value(0.0).run()
    assert matrix(at) == [[0, n0], [0, n1]], "threshold 0: every image is called the second class"
    assert metric(at, "Recall") == "1.000"
    at.slider(key=EVAL_THRESHOLD).set_value(1.0).run()
    assert matrix(at) == [[n0, 0], [n1, 0]]
    at.slider(key=EVAL_THRESHOLD).set_value(0.3).run()
    button(at, "Save threshold").click().run()
    assert not at.exception
    assert sample_run.config()["threshold"] == 0.3
    assert sample_run.config()["model"] == "small-cnn"
    assert any("0.30 saved" in s.value for s in at.success)
    assert Predictor(sample_run.best_checkpoint).threshold == 0.3, "Predict uses the saved threshold"
    assert button(at, "Save threshold").disabled


def test_evaluates_another_folder_and_explains_a_wrong_one(sample_run, tmp_path):
    at = open_page("evaluate")
    at.radio(key=EVAL_SOURCE).set_value("folder").run()
    assert at.info, "asks for a folder first"
    at.text_input(key=EVAL_FOLDER).set_value(str(SAMPLE_DATA)).run()
    assert not at.exception and not at.error
    assert sum(map(sum, matrix(at))) == 60
    wrong = tmp_path / "cats_dogs"
    for name in ("cats", "dogs"):
        (wrong / name).mkdir(parents=True)
        shutil.copy(next((SAMPLE_DATA / "ants").iterdir()), wrong / name / "a.jpg")
    at.text_input(key=EVAL_FOLDER).set_value(str(wrong)).run()
    assert not at.exception
    assert any("trained on" in e.value for e in at.error), [e.value for e in at.error]


@pytest.mark.slow  # the ONNX exporter takes 5 to 20 s
def test_export_writes_onnx_beside_the_checkpoint(sample_run):
    at = open_page("evaluate")  # the Predict page's export section (tests/app/test_app_export.py)
    button(at, "Export to ONNX (fp32)").click().run()
    assert not at.exception and not at.error
    assert (sample_run.path / "best.onnx").is_file() and (sample_run.path / "best.onnx.json").is_file()
    assert any(m.label == "Same label" for m in at.metric)
    labels = [d.label for d in at.get("download_button")]
    assert "Download best.onnx" in labels and "Download best.onnx.json" in labels


def test_without_runs_it_points_to_train():
    at = open_page("evaluate")
    assert any("Train" in i.value for i in at.info)
    assert not at.metric
