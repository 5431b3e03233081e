"""What the screens promise across pages (issue 23, items 7 and 10), through AppTest: a run name and a time
budget do not carry over to the next run, dataset or recipe; a fresh session follows a run of the data in
use; Preview shows what Auto trains; an unnamed run has a name."""

from __future__ import annotations

import shutil
import time

import pytest
from appsupport import button, data_page, open_page

from bincls.paths import SAMPLE_DATA, runs_dir
from bincls.runs.active import active_run
from bincls.runs.folder import ACTIVE, RunFolder
from bincls.runs.summary import summarize
from bincls.training.launcher import stop_run
from bincls.training.recipes import RECIPES
from pages.support.shared import keys
from pages.support.shared.keys import TRAIN_KEYS as K

SCRATCH_MIN = RECIPES["scratch"]["time_budget"] / 60


def _stop_and_wait(run: RunFolder) -> None:
    stop_run(run)
    deadline = time.time() + 60
    while time.time() < deadline and run.status()["state"] in ACTIVE:
        time.sleep(0.3)
    assert run.status()["state"] not in ACTIVE


@pytest.mark.slow
def test_the_run_name_and_a_recipes_budget_do_not_carry_over(tmp_path):
    """The issue's steps: a scratch run named "scratch-90s" with a 1.5 min budget, then another dataset and
    the Auto recipe; the next run must not start as "scratch-90s" with 1.5 min."""
    at = open_page("train")
    at.radio(key=K["preset"]).set_value("scratch").run()
    at.number_input(key=K["time_budget"]).set_value(1.5).run()
    at.text_input(key=K["name"]).set_value("scratch-90s").run()
    at.number_input(key=K["img_size"]).set_value(32).run()
    button(at, "Train").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    run = active_run(runs_dir())
    try:
        assert run is not None
        assert (run.config()["name"], run.config()["time_budget"]) == ("scratch-90s", 90.0)
        assert at.text_input(key=K["name"]).value == "", "that run's name: the next one starts unnamed"
        assert at.number_input(key=K["time_budget"]).value == 1.5, "the user's budget stays with scratch"
        at.radio(key=K["preset"]).set_value("auto").run()
        assert at.number_input(key=K["time_budget"]).value == SCRATCH_MIN, "Auto's own budget, not 1.5"
        at.radio(key=K["preset"]).set_value("scratch").run()
        assert at.number_input(key=K["time_budget"]).value == 1.5, "back on scratch: the budget set for it"
    finally:
        _stop_and_wait(run)

    # Another dataset: a name typed for the old one goes, and so does the run followed.
    at.text_input(key=K["name"]).set_value("for the ants").run()
    other = tmp_path / "insects"
    shutil.copytree(SAMPLE_DATA, other)
    at.switch_page("pages/data.py").run()
    at.text_input(key=keys.DATA_ROOT_INPUT).set_value(str(other))
    button(at, "Use this folder").click().run()
    assert at.session_state[keys.DATA_PATHS] == [str(other)] and at.session_state[keys.CURRENT_RUN] is None
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert at.text_input(key=K["name"]).value == ""
    at.radio(key=K["preset"]).set_value("auto").run()
    assert at.number_input(key=K["time_budget"]).value == SCRATCH_MIN
    assert any("No run of this dataset yet" in i.value for i in at.info), "the sample's run is another's"


def test_a_fresh_session_follows_a_run_of_the_data_in_use_not_the_newest(sample_run):
    newer = RunFolder(shutil.copytree(sample_run.path, runs_dir() / "99991231-235959-small-cnn-ffff"))
    newer.write_config({**newer.config(), "data": ["/elsewhere/cats_vs_dogs"]})
    assert [r.id for r in (newer, sample_run)] == sorted([newer.id, sample_run.id], reverse=True)
    sidebar = " ".join(c.value for c in data_page().sidebar.caption)  # the app opens on the Data page
    assert sample_run.id in sidebar and newer.id not in sidebar
    at = open_page("train")
    assert any(sample_run.id in h.value for h in at.subheader), [h.value for h in at.subheader]


def test_preview_shows_what_auto_trains():
    at = open_page("preview")  # no weights here: Auto is the scratch recipe
    assert at.selectbox(key=keys.PREVIEW_MODEL).value == RECIPES["scratch"]["model"]
    size = RECIPES["scratch"]["img_size"]
    assert any(f"Input {size}x{size} px (as Auto trains it)" in c.value for c in at.caption)


def test_preview_shows_mobilenet_at_224_when_its_weights_are_here(imagenet_hub):
    at = open_page("preview")
    assert at.selectbox(key=keys.PREVIEW_MODEL).value == "mobilenet_v2"
    assert any("Input 224x224 px (as Auto trains it)" in c.value for c in at.caption)


def test_an_unnamed_run_shows_what_it_trained_and_when(sample_run):
    s = summarize(sample_run)
    assert s.name is None and s.title.startswith("small-cnn · ")
    at = open_page("runs")
    assert list(at.dataframe[0].value["Name"]) == [s.title]
