"""The app as a newcomer finds it (issue 17), in Chromium: settings that stay put across pages and reloads,
Enter that starts nothing, no pretrained weights at hand, a run that learned nothing, runs told apart.

The server runs offline in the sense that matters here: an empty torch hub cache (conftest's TORCH_HOME),
so no ImageNet weights are at hand, as on a fresh machine without network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from browser import (
    SLOW_WAIT_MS,
    app_dirs_under,
    goto_page,
    new_session,
    no_errors,
    open_train_settings,
    require_chromium,
    screenshot,
    serve_app,
    set_number,
    wait_idle,
)
from browser import chromium as chromium_browser
from playwright.sync_api import expect

from bincls.paths import SAMPLE_DATA

pytestmark = pytest.mark.browser
WEIGHTS_FILE = "Weights file (a torchvision state_dict)"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One server for the module, with its own runs, cache and uploads folders and no weights at hand."""
    require_chromium()
    base = tmp_path_factory.mktemp("newcomer")
    dirs = app_dirs_under(base)
    torch_home = base / "torch"  # empty: no pretrained weights here
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(torch_home)
    try:
        with serve_app(dirs) as url, chromium_browser() as browser:
            yield url, dirs, browser
    finally:
        if old is not None:
            os.environ["TORCH_HOME"] = old


def _insects(tmp_path):
    """A dataset that is not the bundled sample: a copy of it under another folder name."""
    data = tmp_path / "insects"
    shutil.copytree(SAMPLE_DATA, data)
    return data


def _use_dataset(page, folder) -> None:
    page.get_by_role("textbox", name="Dataset folder").fill(str(folder))
    page.get_by_role("button", name="Use this folder").click()
    page.get_by_text("Now using the folder").wait_for()


def _choose(page, label: str, option: str) -> None:
    """Pick `option` in the selectbox `label`."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option).first.click()
    wait_idle(page)


def _radio(page, option: str) -> None:
    page.locator("[data-testid='stRadio'] label").filter(has_text=option).first.click()
    wait_idle(page)


def _train_settings(page) -> dict:
    """What the Train page shows in the settings this test changes."""
    return {
        "model": page.get_by_role("combobox", name="Model").input_value().split()[0],
        "local file": page.get_by_role("radio", name="Local file").is_checked(),
        "weights file": page.get_by_role("textbox", name=WEIGHTS_FILE).input_value(),
        "frozen": page.get_by_role("radio", name="Freeze backbone, train the head").is_checked(),
        "epochs": page.get_by_role("spinbutton", name="Epochs (at most)").input_value(),
        "name": page.get_by_role("textbox", name="Run name (optional)").input_value(),
    }


def _run_folders(dirs) -> list[str]:
    runs = dirs["BINCLS_RUNS_DIR"]
    return sorted(p for p in os.listdir(runs) if not p.startswith(".")) if os.path.isdir(runs) else []


def test_a_cold_server_lists_the_pages_by_their_titles_only(tmp_path):
    """While app.py imports on a fresh server (seconds), the sidebar must not list the files in pages/
    ("app", "data", ...): only st.navigation's titles, once they are known."""
    require_chromium()
    dirs = app_dirs_under(tmp_path)
    with serve_app(dirs) as url, chromium_browser() as browser:
        page = new_session(browser)
        page.goto(url)
        shown: list[list[str]] = []
        deadline = time.time() + SLOW_WAIT_MS / 1000
        while time.time() < deadline:
            texts = page.locator("[data-testid='stSidebarNavLink']").all_inner_texts()
            links = [t.split("\n")[-1] for t in texts]  # the text after the icon's name
            if links and links not in shown:
                shown.append(links)
            if "Data" in links and page.get_by_role("heading", name="Data", level=1).count():
                break
            time.sleep(0.05)
        assert shown and all(links == ["Label", "Data", "Preview", "Train", "Evaluate", "Predict", "Runs"]
                             for links in shown), shown  # fmt: skip
        goto_page(page, "Train")  # the navigation works as ever
        no_errors(page)


def test_settings_and_dataset_survive_navigation_and_reload_and_enter_starts_nothing(
    app, tmp_path, mobilenet_weights
):
    url, dirs, browser = app
    data = _insects(tmp_path)
    page = new_session(browser)
    page.goto(url)
    page.get_by_role("heading", name="Data", level=1).wait_for()
    _use_dataset(page, data)

    goto_page(page, "Train")
    open_train_settings(page)
    _choose(page, "Model", "mobilenet_v2")
    _radio(page, "Local file")
    weights = page.get_by_role("textbox", name=WEIGHTS_FILE)
    weights.fill(str(mobilenet_weights))
    weights.press("Enter")
    wait_idle(page)
    _radio(page, "Freeze backbone, train the head")
    page.get_by_role("textbox", name="Run name (optional)").fill("frozen mobilenet")
    page.get_by_role("textbox", name="Run name (optional)").press("Enter")
    wait_idle(page)
    set_number(page, "Epochs (at most)", 3)  # fills the field and presses Enter in it (item 2)
    page.wait_for_timeout(3000)
    assert _run_folders(dirs) == [], "Enter in a number field started a run"
    assert page.get_by_text("is training now").count() == 0
    want = {"model": "mobilenet_v2", "local file": True, "weights file": str(mobilenet_weights),
            "frozen": True, "epochs": "3", "name": "frozen mobilenet"}  # fmt: skip
    assert _train_settings(page) == want
    no_errors(page)
    screenshot(page, "newcomer-1-train-settings")

    goto_page(page, "Data")  # away and back: every setting as it was
    goto_page(page, "Evaluate")
    goto_page(page, "Train")
    open_train_settings(page)
    assert _train_settings(page) == want

    page.reload()  # a new session: the settings and the dataset come back from this browser's state file
    page.get_by_role("heading", name="Train", level=1).wait_for(timeout=SLOW_WAIT_MS)
    page.get_by_text("insects").first.wait_for()  # the dataset line names the chosen folder
    open_train_settings(page)
    assert _train_settings(page) == want
    goto_page(page, "Data")
    page.get_by_text(str(data)).first.wait_for()  # "In use:" is the chosen folder, not the sample
    no_errors(page)
    time.sleep(0.5)
    assert _run_folders(dirs) == []
    page.context.close()


def test_another_browser_starts_from_the_defaults(app):
    """The state file is per browser: a second browser (its own cookies) gets the bundled sample."""
    url, _, browser = app
    page = new_session(browser)
    page.goto(url)
    page.get_by_role("heading", name="Data", level=1).wait_for()
    page.get_by_text("Bundled sample (ants vs bees)").first.wait_for()
    page.context.close()


# Offline, a run that learned nothing, runs told apart (items 7, 4, 5) ------------------------------------
def _alert(page, text: str):
    """The alert box (error, warning, info) that says `text`."""
    return page.locator("[data-testid='stAlert']").filter(has_text=text).first


def _train_button(page):
    return page.get_by_role("button", name="Train", exact=True)


def _runs_grid(page):
    """The Runs table. The grid draws on a canvas; its accessible table carries the headers and cells."""
    grid = page.locator("[data-testid='stMain'] [data-testid='stDataFrame']").first
    grid.wait_for(state="visible")
    page.locator("[data-testid='stMain'] [role='gridcell']").first.wait_for(state="attached")
    return grid


def _grid_rows(page) -> list[dict[str, str]]:
    """The Runs table as the browser has it: one dict per row, column header -> cell text. The grid's
    accessible table holds only the columns in view, so scroll it sideways and gather them all."""
    return page.evaluate(
        """async () => {
            const root = document.querySelector("[data-testid='stMain'] [data-testid='stDataFrame']");
            const scroller = root.querySelector(".dvn-scroller");
            const heads = {}, rows = {};
            for (let left = 0; ; left += 300) {
                scroller.scrollLeft = left;
                await new Promise(r => setTimeout(r, 300));
                root.querySelectorAll("[role='columnheader']").forEach(
                    h => { heads[h.getAttribute("aria-colindex")] = h.innerText.trim(); });
                root.querySelectorAll("tbody tr").forEach(tr => {
                    const row = rows[tr.getAttribute("aria-rowindex")] ||= {};
                    tr.querySelectorAll("[role='gridcell']").forEach(
                        c => { row[c.getAttribute("aria-colindex")] = c.innerText.trim(); });
                });
                if (left >= scroller.scrollWidth - scroller.clientWidth) break;
            }
            scroller.scrollLeft = 0;
            return Object.keys(rows).sort((a, b) => a - b).map(i => Object.fromEntries(
                Object.entries(rows[i]).map(([col, text]) => [heads[col], text])));
        }"""
    )


def _tick_row(page, grid, index: int) -> None:
    """Tick the box at the left of table row `index` (rows are 35 px under a 35 px header)."""
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 18, box["y"] + 35 + 35 * index + 17)
    wait_idle(page)


def test_offline_the_page_says_so_before_the_press_and_auto_trains_from_scratch_a_run_that_learned_nothing(
    app,
):
    """No ImageNet weights here (item 7): the page says so before any press, in its own words, and offers
    what works; Auto trains from scratch. That run, with a learning rate far too high, learned nothing
    (item 4): Train, Runs and Evaluate each say so, with the likely cause."""
    url, dirs, browser = app
    page = new_session(browser)
    page.goto(url)
    page.get_by_role("heading", name="Data", level=1).wait_for()
    goto_page(page, "Train")
    _alert(page, "no pretrained weights here: training from scratch").wait_for()
    assert _train_button(page).is_enabled()

    _radio(page, "Best")  # a pretrained recipe: refused before the press, with what works instead
    refusal = _alert(page, "there are none here")
    refusal.wait_for()
    text = refusal.inner_text()
    assert "From scratch recipe" in text and "Weights: Local file" in text and "--" not in text, text
    assert _train_button(page).is_disabled()
    _radio(page, "Auto (recommended)")
    _alert(page, "no pretrained weights here").wait_for()

    open_train_settings(page)
    _choose(page, "Model", "mobilenet_v2")  # pretrainable: ImageNet is not preselected here
    assert page.get_by_role("radio", name="None (random init)").is_checked()
    assert not page.get_by_role("radio", name="ImageNet").is_checked()
    assert _train_button(page).is_enabled()
    _radio(page, "ImageNet")  # asked for anyway: the page says why not, before the press
    missing = _alert(page, "There are no ImageNet weights for mobilenet_v2 here")
    missing.wait_for()
    text = missing.inner_text()
    assert "Weights: Local file" in text and "Weights: None" in text and "--" not in text, text
    assert _train_button(page).is_disabled()
    assert page.locator("[data-testid='stException']").count() == 0
    screenshot(page, "newcomer-2-offline-imagenet")

    page.get_by_role("button", name="Back to the recipe's values").click()
    expect(page.get_by_role("combobox", name="Model")).to_have_value(re.compile("^small-cnn"))
    expect(_train_button(page)).to_be_enabled()
    set_number(page, "Image size (px)", 48)
    set_number(page, "Epochs (at most)", 1)
    set_number(page, "Learning rate", 5)  # far too high: the network's units stop responding
    page.get_by_role("textbox", name="Run name (optional)").fill("too fast")
    page.get_by_role("textbox", name="Run name (optional)").press("Enter")
    wait_idle(page)
    before = set(_run_folders(dirs))
    _train_button(page).click()

    page.get_by_text("but it learned nothing").wait_for()  # the outcome line is no success
    warning = _alert(page, "This run learned nothing")
    assert "learning rate (5) is too high" in warning.inner_text()
    header = page.get_by_text("preset scratch").first.inner_text()
    assert "small-cnn" in header and "from scratch" in header, header  # auto trained from scratch
    (new,) = set(_run_folders(dirs)) - before
    cfg = json.loads((Path(dirs["BINCLS_RUNS_DIR"]) / new / "config.json").read_text())
    assert (cfg["preset"], cfg["weights"], cfg["name"]) == ("scratch", "none", "too fast")
    no_errors(page)
    screenshot(page, "newcomer-3-train-learned-nothing")

    goto_page(page, "Runs")
    grid = _runs_grid(page)
    page.get_by_text("1 run learned nothing").first.wait_for()
    row = next(r for r in _grid_rows(page) if r.get("Name") == "too fast")
    assert "learned nothing" in row["State"], row
    _tick_row(page, grid, [r.get("Name") for r in _grid_rows(page)].index("too fast"))
    assert "learning rate (5) is too high" in _alert(page, "This run learned nothing").inner_text()
    no_errors(page)
    screenshot(page, "newcomer-4-runs-learned-nothing")

    goto_page(page, "Evaluate")  # opens on the run this session follows
    page.get_by_text("Confusion matrix").first.wait_for()
    assert "too fast" in page.get_by_role("combobox", name="Run").input_value()
    assert "learning rate (5) is too high" in _alert(page, "This run learned nothing").inner_text()
    no_errors(page)
    screenshot(page, "newcomer-5-evaluate-learned-nothing")
    page.context.close()


def _train_runs(dirs, weights) -> None:
    """Two real runs on the bundled sample that differ in what a newcomer tries first: a named frozen
    pretrained network (the Fast recipe, from a local weights file) and an unnamed small CNN from scratch."""
    from bincls.training.config import TrainConfig
    from bincls.training.loop import train

    runs = dirs["BINCLS_RUNS_DIR"]
    train(TrainConfig(data=[str(SAMPLE_DATA)], preset="fast", model="mobilenet_v2", weights=str(weights),
                      epochs=5, workers=0, name="frozen mobilenet"), runs_dir=runs)  # fmt: skip
    train(TrainConfig(data=[str(SAMPLE_DATA)], preset="scratch", epochs=1, img_size=48, workers=0),
          runs_dir=runs)  # fmt: skip


def test_runs_are_told_apart_and_evaluate_and_predict_open_on_the_best_run(app, mobilenet_weights):
    """Item 5: the Runs table says how each run went and what it tried (weights, frozen or fine-tuned, recipe,
    augmentation, image size, duration, best validation and test accuracy); compared runs get distinct
    names and colours; Evaluate and Predict open on the best finished run of the current dataset."""
    url, dirs, browser = app
    _train_runs(dirs, mobilenet_weights)
    page = new_session(browser)
    page.goto(url)
    page.get_by_role("heading", name="Data", level=1).wait_for()

    goto_page(page, "Evaluate")  # nothing picked in this session: the best finished run of the sample
    page.get_by_text("Confusion matrix").first.wait_for()
    assert page.get_by_role("combobox", name="Run").input_value().startswith("frozen mobilenet")
    assert _alert(page, "learned nothing").count() == 0
    no_errors(page)
    goto_page(page, "Predict")
    assert page.get_by_role("combobox", name="Run").input_value().startswith("frozen mobilenet")

    goto_page(page, "Runs")
    grid = _runs_grid(page)
    rows = _grid_rows(page)
    columns = {"Name", "State", "Best val acc", "Test acc", "Weights", "Backbone", "Preset", "Augment",
               "Image size", "Duration"}  # fmt: skip
    assert columns <= set(rows[0]), rows[0]
    frozen = next(r for r in rows if r["Name"] == "frozen mobilenet")
    assert (frozen["Weights"], frozen["Backbone"], frozen["Preset"], frozen["Augment"]) == (
        "mobilenet_v2_imagenet.pth", "frozen", "fast", "off")  # features computed once  # fmt: skip
    # The accessible table holds the values (the canvas draws them as "224 px", "83.3%").
    assert frozen["Image size"] == "224" and frozen["Duration"].endswith("s"), frozen
    assert 0.7 <= float(frozen["Best val acc"]) <= 1, frozen
    assert 0 <= float(frozen["Test acc"]) <= 1, "the Evaluate page above kept the test accuracy"
    # An unnamed run is named by what it trained and when (issue 23, item 10), never a blank
    scratch = next(r for r in rows if r["Name"].startswith("small-cnn · scratch · ")
                   and r["Image size"] == "48")  # fmt: skip
    assert (scratch["Weights"], scratch["Backbone"], scratch["Augment"]) == ("from scratch", "", "on")

    order = [r["Run"] for r in rows]
    for row in (frozen, scratch):
        _tick_row(page, grid, order.index(row["Run"]))
    page.locator(".js-plotly-plot").nth(1).wait_for()
    traces = page.evaluate(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".map(g => g.data.map(t => [t.name, t.line.color]))"
    )
    for chart in traces:  # loss and accuracy: the same name and colour for a run in both
        names, colours = [n for n, _ in chart], [c for _, c in chart]
        assert len(set(names)) == 2 and len(set(colours)) == 2, chart
        assert any(n.startswith("frozen mobilenet (") for n in names), names
        other = next(n for n in names if not n.startswith("frozen mobilenet"))
        assert "small-cnn" in other and "from scratch" in other, other  # what differs names the other
    assert traces[0] == traces[1]
    no_errors(page)
    screenshot(page, "newcomer-6-runs-table")
    page.context.close()
