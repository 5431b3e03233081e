"""The Label page in Chromium (issue 22): a whole session on a copy of the sample leaves its files
byte-identical, and no answer is lost across a browser reload, a server restart and two tabs answering at
once; a lasso and a box drawn on the pile map label what they hold in one click.

The person is an oracle that reads the truth from the copy's folder names (ants/, bees/), which the session
never looks at. The cards do not show their paths, so the test asks the engine for the same batch the page
shows (suggestions are deterministic for the same answers) and checks the store through the engine after
every step. Screenshots go to test-output/screens/label-*.png.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
from browser import (
    SCREENS,
    app_dirs,
    chromium,
    no_errors,
    require_chromium,
    serve_app_process,
    wait_idle,
)
from playwright.sync_api import expect

from bincls.data.keyed_store import path_key
from bincls.data.labelled_csv import read_labelled_csv
from bincls.labeling import LabelingSession
from bincls.paths import SAMPLE_DATA
from pages.support.label.batch import PRESELECT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 120_000  # ms: a rerun of the page on a loaded 2-core machine takes seconds, not minutes
CLASSES = ("ants", "bees")
KEY = {"ants": "1", "bees": "2"}  # the classes in the session's (sorted) order
FORM_FOLDERS = "Folders of unlabelled images (one per line; searched with their subfolders)"


def _digest(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _truth(path: str) -> str:
    return Path(path).parent.name


def _shot(page, name: str, copy: bool = False) -> None:
    """The whole page (the viewport is tall enough for it) in test-output/screens/label-NAME.png, and in
    /tmp/labeltest_NAME.png for the ones worth a look by eye."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"label-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if copy:
        shutil.copy(path, f"/tmp/labeltest_{name}.png")


def _tab(context, url: str):
    page = context.new_page()
    page.goto(url + "/label")
    page.get_by_role("heading", name="Label", level=1).wait_for()
    return page


def _metric(page, label: str):
    metric = page.locator("[data-testid='stMetric']").filter(has_text=label)
    return metric.locator("[data-testid='stMetricValue']")


def _wait_labelled(page, n_answered: int, total: int = 60) -> None:
    expect(_metric(page, "Not labelled")).to_have_text(str(total - n_answered), timeout=WAIT)


def _card(page, i: int):
    """The i-th card of the batch on screen: the innermost block holding its answer control."""
    first = page.locator("[class*='st-key-w_label_card_']").first
    first.wait_for()
    batch = re.search(r"st-key-w_label_card_(\d+)_", first.get_attribute("class")).group(1)
    control = page.locator(f".st-key-w_label_card_{batch}_{i}")
    return page.locator("[data-testid='stVerticalBlock']").filter(has=control).last


def _saved(page, i: int, label: str) -> None:
    expect(_card(page, i).get_by_text(re.compile(rf"✔ {label}\s+saved"))).to_be_visible(timeout=WAIT)


def _key(page, i: int, label: str) -> None:
    """Answer the card under the cursor (card i) with its class's key; wait for the page to show it saved."""
    page.keyboard.press(KEY[label])
    _saved(page, i, label)


def _blur(page) -> None:
    """Keys go to the page, not to a field or button that kept the focus (Enter would press a button)."""
    page.evaluate("document.activeElement && document.activeElement.blur()")


class Oracle:
    """The answers the test gave, and the engine's view of the store to check them against."""

    def __init__(self, pile: Path):
        self.session = LabelingSession.open([str(pile)], CLASSES)
        self.given: dict[str, str] = {}

    def batch(self) -> list:
        return self.session.suggest(8)

    def check(self) -> None:
        stored = {k: (e["label"], e["how"]) for k, e in self.session.entries().items()}
        assert stored == {path_key(p): (label, "answer") for p, label in self.given.items()}


@contextmanager
def _screens_on_failure(context):
    """What every tab showed when something failed: test-output/screens/label-failed-*.png."""
    try:
        yield
    except BaseException:
        for i, page in enumerate(context.pages):
            _shot(page, f"failed-{i}")
        raise


def test_a_labelling_session_in_the_browser_survives_reload_restart_and_two_tabs(tmp_path):
    require_chromium()
    pile = Path(shutil.copytree(SAMPLE_DATA, tmp_path / "pile"))
    before = _digest(pile)
    dirs = app_dirs()  # the test's own cache folder: the engine below reads the server's answers
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 2600})
        context.set_default_timeout(WAIT)
        with serve_app_process(dirs) as (url, server), _screens_on_failure(context):
            page = _tab(context, url)
            page.get_by_role("textbox", name=FORM_FOLDERS).fill(str(pile))
            page.get_by_role("textbox", name="First class").fill("ants")
            page.get_by_role("textbox", name="Second class").fill("bees")
            page.get_by_role("button", name="Open the pile").click()
            page.get_by_role("heading", name="Label these next").wait_for()
            expect(page.get_by_text("no guess yet")).to_have_count(8, timeout=WAIT)
            _wait_labelled(page, 0)
            no_errors(page)
            _shot(page, "1-opened", copy=True)
            oracle = Oracle(pile)

            # Batch 1 (no model yet): six answers by key, one at a time; Enter leaves the other two.
            first = oracle.batch()
            _blur(page)
            for i, s in enumerate(first[:6]):
                _key(page, i, _truth(s.path))
                oracle.given[s.path] = _truth(s.path)
            assert set(oracle.given.values()) == set(CLASSES), "both classes answered: a model next"
            oracle.check()
            _shot(page, "2-answered-by-keys", copy=True)
            page.keyboard.press("Enter")
            _wait_labelled(page, 6)
            oracle.check()

            # Batch 2: the guesses pre-selected where sure enough; one answer by key, Enter confirms the
            # others as shown.
            second = oracle.batch()
            expect(page.get_by_text(re.compile(r"guess (ants|bees) \d+%"))).to_have_count(8, timeout=WAIT)
            _shot(page, "3-guesses", copy=True)
            _key(page, 0, _truth(second[0].path))
            oracle.given[second[0].path] = _truth(second[0].path)
            page.keyboard.press("Enter")
            confirmed = {s.path: s.guess for s in second[1:] if s.p >= PRESELECT}  # the rest: too unsure
            oracle.given.update(confirmed)
            _wait_labelled(page, 7 + len(confirmed))
            oracle.check()

            # A reload (a new app session): the pile comes back from the browser's memory, the answers
            # from the store.
            page.reload()
            page.get_by_role("heading", name="Label these next").wait_for()
            _wait_labelled(page, len(oracle.given))
            expect(page.get_by_text(f"in {pile}")).to_be_visible()
            third = oracle.batch()
            _blur(page)
            _key(page, 0, _truth(third[0].path))
            oracle.given[third[0].path] = _truth(third[0].path)
            oracle.check()
            no_errors(page)
            _shot(page, "4-after-reload")

            os.killpg(server.pid, signal.SIGKILL)  # a crash: nothing is flushed on the way out
            server.wait(30)

        with serve_app_process(dirs, log_suffix=".server2.log") as (url, _), _screens_on_failure(context):
            page.goto(url + "/label")
            page.get_by_role("heading", name="Label these next").wait_for()
            _wait_labelled(page, len(oracle.given))
            expect(page.get_by_text(f"in {pile}")).to_be_visible()
            no_errors(page)
            _shot(page, "5-after-restart", copy=True)

            # Two tabs of the same browser, on the same batch: the first answers from the front by key,
            # the second from the back by click, each action sent before the other's rerun is done.
            other = _tab(context, url)
            _wait_labelled(other, len(oracle.given))
            both = oracle.batch()
            _blur(page)
            for j in range(3):
                front, back = both[j], both[7 - j]
                page.keyboard.press(KEY[_truth(front.path)])
                _card(other, 7 - j).get_by_role("radio", name=_truth(back.path), exact=True).click()
                _saved(page, j, _truth(front.path))
                _saved(other, 7 - j, _truth(back.path))
                oracle.given[front.path], oracle.given[back.path] = _truth(front.path), _truth(back.path)
            oracle.check()
            for j in (0, 1):  # answered in the first tab before the second's last rerun: shown as answered
                _saved(other, j, _truth(both[j].path))
                checked = _card(other, j).get_by_role("radio", checked=True)
                expect(checked).to_have_text(_truth(both[j].path))
            no_errors(page)
            no_errors(other)
            _shot(other, "6-second-tab", copy=True)
            other.close()
            # A tab shows the other's answers at its next rerun (Streamlit pushes nothing on its own).
            page.reload()
            _wait_labelled(page, len(oracle.given))

            _lasso_and_box_on_the_map(page, oracle)
            _download_and_train(page, oracle, tmp_path)
        context.close()
    assert _digest(pile) == before, "the pile's files are byte-identical after the whole session"


def _draw(page, chart, tool: str, corners: list[tuple[float, float]]) -> None:
    """Choose the modebar's selection tool and drag through `corners` (fractions of the plot area)."""
    chart.hover()
    chart.locator(f".modebar-btn[data-title='{tool}']").click()
    area = chart.locator(".nsewdrag").first.bounding_box()  # plotly's drag layer: the plot area itself

    def at(fx: float, fy: float) -> tuple[float, float]:
        return area["x"] + area["width"] * fx, area["y"] + area["height"] * fy

    page.mouse.move(*at(*corners[0]))
    page.mouse.down()
    closed = corners[1:] + (corners[:1] if tool == "Lasso Select" else [])  # a box ends where it is dragged
    for corner in closed:
        page.mouse.move(*at(*corner), steps=10)
    page.mouse.up()


def _select_and_label(page, oracle: Oracle, tool: str, corners, label: str, shot: str) -> None:
    """Select points on the map with `tool`, label them all `label` in one click; the store then has exactly
    the selected images changed, each to `label`, and nothing else."""
    chart = page.locator(".js-plotly-plot").first
    chart.scroll_into_view_if_needed()
    _draw(page, chart, tool, corners)
    selected = page.get_by_text(re.compile(r"^\d+ images selected"))
    selected.wait_for()
    n = int(selected.inner_text().split()[0])
    assert n > 0
    expect(page.get_by_role("button", name=f"All {n} are {label}")).to_be_visible()
    _shot(page, shot, copy=True)
    before = oracle.session.entries()
    page.get_by_role("button", name=f"All {n} are {label}").click()
    page.get_by_text(f"Labelled {n} images {label}.").wait_for()
    wait_idle(page)
    expect(selected).to_have_count(0)  # the map is drawn anew: no selection left over
    after = oracle.session.entries()
    changed = {k for k, e in after.items() if before.get(k) != e}
    assert 0 < len(changed) <= n and all(after[k]["label"] == label for k in changed)
    assert set(before) <= set(after), "answers outside the selection are kept"
    by_key = dict(zip(oracle.session.pile.keys, oracle.session.pile.paths))
    oracle.given.update({by_key[k]: label for k in changed})
    oracle.check()
    no_errors(page)


def _lasso_and_box_on_the_map(page, oracle: Oracle) -> None:
    """A lasso (the map's own tool) around the left of the plot labels its points bees; a box (chosen on the
    modebar) over the top left, neither."""
    lasso = [(0.02, 0.1), (0.3, 0.02), (0.45, 0.5), (0.3, 0.98), (0.02, 0.9)]
    _select_and_label(page, oracle, "Lasso Select", lasso, "bees", "7-map-lasso")
    box = [(0.05, 0.05), (0.6, 0.6)]
    _select_and_label(page, oracle, "Box Select", box, "neither", "8-map-box")


def _download_and_train(page, oracle: Oracle, tmp_path: Path) -> None:
    """The CSV downloaded is the labels given (skip / neither left out); "Train on these labels" opens Train
    on the same CSV, written in bincls' cache folder."""
    labels = sorted((p, label) for p, label in oracle.given.items() if label in CLASSES)
    with page.expect_download() as download:
        page.get_by_role("button", name=f"Download the {len(labels)} labels (CSV)").click()
    got = tmp_path / "downloaded.csv"
    download.value.save_as(got)
    assert read_labelled_csv(got).rows == tuple(labels)
    page.get_by_role("button", name="Train on these labels").click()
    page.get_by_role("heading", name="Train", level=1).wait_for()
    csv = oracle.session.labels_file()
    page.get_by_text(f"{csv.name} · ants vs bees").wait_for()
    assert read_labelled_csv(csv).rows == tuple(labels)
    wait_idle(page)
    no_errors(page)
    _shot(page, "9-train", copy=True)
