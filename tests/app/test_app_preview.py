"""The Preview page through Streamlit's AppTest: a captioned batch, its tensor statistics, new batches,
the eval transform, the augmentation views, and data problems shown as messages."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from pages.support.shared import keys

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def preview_page(**state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/preview.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def batch_tiles(at: AppTest) -> list:
    """The batch grid: every image element captioned with a class name."""
    return [im for im in at.image if im.captions and im.captions[0] in ("ants", "bees")]


def stats_table(at: AppTest):
    return next(d.value for d in at.dataframe if list(d.value.columns) == ["R", "G", "B"])


def test_the_page_shows_a_captioned_batch_and_its_statistics():
    at = preview_page()
    assert at.title[0].value == "Preview"
    assert not at.error
    tiles = batch_tiles(at)
    assert len(tiles) == 16
    assert {im.captions[0] for im in tiles} == {"ants", "bees"}
    table = stats_table(at)
    assert list(table.index) == ["mean", "std", "min", "max"]
    # small-cnn normalizes with mean 0.5, std 0.5: values fill -1..1
    assert (table.loc["min"] >= -1.0).all() and (table.loc["max"] <= 1.0).all()
    assert (table.loc["std"] > 0.2).all()
    aug = [im for im in at.image if im.captions and im.captions[0].startswith(("eval", "train #"))]
    assert len(aug) == 9
    assert len(at.get("plotly_chart")) == 2


def test_new_batch_draws_other_images():
    at = preview_page()
    seed = at.session_state[keys.PREVIEW_SEED]
    first = [im.value for im in batch_tiles(at)]
    next(b for b in at.button if b.label == "New batch").click()
    at.run()
    assert not at.exception
    assert at.session_state[keys.PREVIEW_SEED] == seed + 1
    assert [im.value for im in batch_tiles(at)] != first


def test_the_eval_transform_and_another_model():
    at = preview_page()
    at.toggle(key=keys.PREVIEW_TRAIN).set_value(False)
    at.selectbox(key=keys.PREVIEW_MODEL).set_value("seed-lenet")
    at.run()
    assert not at.exception and not at.error
    assert len(batch_tiles(at)) == 16
    assert any("Input 32x32 px" in c.value for c in at.caption)
    assert any("Eval transform" in c.value for c in at.caption)


def test_unusable_data_shows_the_error(tmp_path):
    at = preview_page(**{keys.DATA_PATHS: [str(tmp_path / "missing")]})
    assert "does not exist" in " ".join(e.value for e in at.error)
    assert not batch_tiles(at)
