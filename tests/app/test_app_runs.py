"""The Runs page through Streamlit's AppTest: the table, overlaid curves, delete with confirmation."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from appsupport import open_page
from streamlit.testing.v1 import AppTest

from bincls.paths import SAMPLE_DATA, runs_dir
from bincls.runs.folder import RunFolder
from bincls.training.config import TrainConfig
from bincls.training.loop import train
from pages.support.shared.keys import CURRENT_RUN, RUNS_TABLE


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> Path:
    """Two finished one-epoch runs (adam and sgd), trained once for the module."""
    base = tmp_path_factory.mktemp("two-runs")
    for optimizer in ("adam", "sgd"):
        cfg = TrainConfig(data=[str(SAMPLE_DATA)], epochs=1, img_size=32, model="small-cnn", workers=0,
                          optimizer=optimizer)
        train(cfg, runs_dir=base)
    return base


@pytest.fixture
def runs(two_runs) -> list[RunFolder]:
    """The two runs copied into this test's own runs folder, newest first like the table."""
    for src in two_runs.iterdir():
        shutil.copytree(src, runs_dir() / src.name)
    return sorted((RunFolder(p) for p in runs_dir().iterdir()), key=lambda r: r.id, reverse=True)


def _select(at: AppTest, rows: list[int]) -> AppTest:
    at.session_state[RUNS_TABLE] = {"selection": {"rows": rows, "columns": []}}
    return at.run()


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


@pytest.mark.slow
def test_table_lists_every_run_newest_first(runs):
    at = open_page("runs")
    table = at.dataframe[0].value
    assert list(table["Run"]) == [r.id for r in runs]
    assert set(table["Optimizer"]) == {"adam", "sgd"}
    assert set(table["Epochs"]) == {"1/1"} and set(table["Data"]) == {"sample_data"}
    assert all("finished" in s for s in table["State"])
    assert table["Best val acc"].between(0, 1).all()
    # How each run went leads (the table is wider than the page), then what tells the runs apart.
    assert list(table.columns[:4]) == ["Name", "State", "Best val acc", "Test acc"]
    assert {"Weights", "Backbone", "Preset", "Augment", "Image size", "Duration"} <= set(table.columns)
    assert set(table["Weights"]) == {"from scratch"} and set(table["Image size"]) == {32}
    assert set(table["Augment"]) == {"on"} and all(d.endswith("s") for d in table["Duration"])
    assert table["Test acc"].isna().all(), "no test accuracy before an evaluation"
    assert not at.get("plotly_chart"), "no curves before a selection"


@pytest.mark.slow
def test_selected_runs_are_overlaid_and_one_opens_in_train(runs):
    at = _select(open_page("runs"), [0, 1])
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    for chart, title in zip(charts, ("Validation loss", "Validation accuracy")):
        spec = json.loads(chart.proto.spec)
        assert spec["layout"]["title"]["text"] == title
        assert spec["layout"]["xaxis"]["title"]["text"] == "epoch"
        # Named by what differs between them (the optimizer, so its default learning rate), with the end of
        # the id; one colour each.
        names = [d["name"] for d in spec["data"]]
        differs = {"adam": "adam · lr 0.001", "sgd": "sgd · lr 0.01"}
        assert names == [f"{differs[r.config()['optimizer']]} ({r.id.rsplit('-', 1)[-1]})" for r in runs]
        colours = [d["line"]["color"] for d in spec["data"]]
        assert len(set(colours)) == len(colours), colours
    assert _button(at, "Open in Train").disabled, "opening needs exactly one run"
    _select(at, [1])
    _button(at, "Open in Train").click().run()
    assert at.session_state[CURRENT_RUN] == runs[1].id
    assert not at.exception


@pytest.mark.slow
def test_delete_asks_first_then_removes_only_that_folder(runs):
    keep, gone = runs
    at = _select(open_page("runs"), [1])
    _button(at, "Delete…").click().run()
    assert gone.path.exists(), "nothing is deleted before the confirmation"
    assert any(gone.id in m.value for m in at.markdown)
    _button(at, "Yes, delete").click().run()
    assert not at.exception
    assert not gone.path.exists() and keep.path.exists()
    assert list(at.dataframe[0].value["Run"]) == [keep.id]
    assert sorted(p.name for p in runs_dir().iterdir() if p.is_dir()) == [keep.id]


def test_a_running_run_is_not_deleted():
    busy = RunFolder.create(runs_dir(), "small-cnn")
    busy.write_config(TrainConfig(data=[str(SAMPLE_DATA)]).to_dict())
    busy.set_status(state="running", pid=os.getpid())  # this very process: alive
    at = _select(open_page("runs"), [0])
    _button(at, "Delete…").click().run()
    _button(at, "Yes, delete").click().run()
    assert busy.path.exists()
    assert any("still running" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.exception
