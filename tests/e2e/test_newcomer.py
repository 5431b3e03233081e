"""The app as a newcomer finds it (issue 17), in Chromium: settings that stay put across pages and reloads,
Enter that starts nothing, no pretrained weights at hand, a run that learned nothing, runs told apart.

The server runs offline in the sense that matters here: an empty torch hub cache (conftest's TORCH_HOME),
so no ImageNet weights are at hand, as on a fresh machine without network.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
from browser import (
    SLOW_WAIT_MS,
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

from bincls.paths import SAMPLE_DATA

pytestmark = pytest.mark.browser
WEIGHTS_FILE = "Weights file (a torchvision state_dict)"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One server for the module, with its own runs, cache and uploads folders and no weights at hand."""
    require_chromium()
    base = tmp_path_factory.mktemp("newcomer")
    dirs = {f"BINCLS_{n}_DIR": str(base / n.lower()) for n in ("RUNS", "CACHE", "UPLOADS")}
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

