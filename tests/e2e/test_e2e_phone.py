"""A phone (390 x 844) and the system's dark theme (issue 23, item 10), in Chromium: the sidebar folds away
after a page change and after a reload, no page is wider than the screen, the confusion matrix's texts do
not overlap, the theme follows the system's preference, and the settings menu is there to change it.
Screenshots go to test-output/screens/."""

from __future__ import annotations

import shutil

import pytest
from browser import (
    SLOW_WAIT_MS,
    app_dirs_under,
    chromium,
    require_chromium,
    screenshot,
    serve_app,
    wait_idle,
)

from bincls.paths import SAMPLE_DATA
from bincls.training.config import TrainConfig
from bincls.training.loop import train

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
PAGES = {"Data": "", "Preview": "preview", "Train": "train", "Evaluate": "evaluate", "Predict": "predict",
         "Runs": "runs"}  # fmt: skip


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """Class names as long as real ones (with_mask / without_mask), and a finished run on them."""
    require_chromium()
    base = tmp_path_factory.mktemp("phone")
    root = base / "masks"
    shutil.copytree(SAMPLE_DATA / "ants", root / "with_mask")
    shutil.copytree(SAMPLE_DATA / "bees", root / "without_mask")
    dirs = app_dirs_under(base)
    train(TrainConfig(data=[str(root)], epochs=1, img_size=32, workers=0), runs_dir=dirs["BINCLS_RUNS_DIR"])
    with serve_app(dirs) as url, chromium() as browser:
        yield url, root, browser


def _page(browser, scheme: str = "light", viewport: dict = PHONE):
    context = browser.new_context(viewport=viewport, color_scheme=scheme)
    context.set_default_timeout(SLOW_WAIT_MS)
    return context.new_page()


def _open(page, url: str, path: str, title: str) -> None:
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", name=title, level=1).wait_for()
    wait_idle(page)
    page.wait_for_timeout(800)  # the sidebar slides


def _sidebar_open(page) -> bool:
    box = page.locator("[data-testid='stSidebar']").bounding_box()
    return box is not None and box["x"] + box["width"] > 1


def test_the_sidebar_folds_after_a_page_change_and_after_a_reload(app):
    url, _, browser = app
    page = _page(browser)
    _open(page, url, "", "Data")
    assert not _sidebar_open(page), "a phone opens on the page, not under the sidebar"
    page.locator("[data-testid='stExpandSidebarButton']").click()
    page.wait_for_timeout(800)
    assert _sidebar_open(page)
    page.get_by_role("link", name="Train", exact=True).first.click()
    page.get_by_role("heading", name="Train", level=1).wait_for()
    wait_idle(page)
    page.wait_for_timeout(1200)
    assert not _sidebar_open(page), "after a page change the page is in view"
    screenshot(page, "phone-after-navigation")
    page.reload()
    page.get_by_role("heading", name="Train", level=1).wait_for()
    wait_idle(page)
    page.wait_for_timeout(1200)
    assert not _sidebar_open(page), "and after a reload"


def test_a_wide_screen_keeps_its_sidebar(app):
    url, _, browser = app
    page = _page(browser, viewport={"width": 1400, "height": 1000})
    _open(page, url, "train", "Train")
    assert _sidebar_open(page)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_a_phone_in_the_systems_theme(app, scheme):
    url, root, browser = app
    page = _page(browser, scheme)
    _open(page, url, "", "Data")
    page.get_by_role("textbox", name="Dataset folder").fill(str(root))
    page.get_by_role("button", name="Use this folder").click()
    page.get_by_text("Now using the folder").wait_for()
    background = page.evaluate(
        "() => getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor")
    channels = [int(c) for c in background[background.index("(") + 1 : background.index(")")].split(",")[:3]]
    assert (sum(channels) / 3 < 60) == (scheme == "dark"), background  # the system's theme, not a fixed one
    assert page.locator("[data-testid='stMainMenu']").is_visible(), "the settings menu (theme) is offered"
    for title, path in PAGES.items():
        _open(page, url, path, title)
        overflow = page.evaluate("() => { const m = document.querySelector('[data-testid=stMain]');"
                                 " return m.scrollWidth - m.clientWidth; }")  # fmt: skip
        assert overflow <= 1, f"{title} is {overflow} px wider than the phone"
        screenshot(page, f"phone-{scheme}-{path or 'data'}")
    _open(page, url, "evaluate", "Evaluate")
    page.locator(".js-plotly-plot").first.wait_for()
    boxes = page.evaluate("""() => Array.from(document.querySelector('.js-plotly-plot')
        .querySelectorAll('.heatmaplayer text, .xtick text, .ytick text'))
        .map(t => { const b = t.getBoundingClientRect();
                    return [t.textContent, b.left, b.top, b.right, b.bottom]; })
        .filter(b => b[0].trim())""")
    assert len(boxes) >= 8, boxes  # four cells, two labels on each axis
    overlaps = [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1 :]
                if a[1] < b[3] - 1 and b[1] < a[3] - 1 and a[2] < b[4] - 1 and b[2] < a[4] - 1]  # fmt: skip
    assert not overlaps, overlaps
    cells = [b for b in boxes if b[0][0].isdigit()]
    plot = page.locator(".js-plotly-plot .heatmaplayer").first.bounding_box()
    assert all(plot["x"] - 1 <= b[1] and b[3] <= plot["x"] + plot["width"] + 1 for b in cells), (cells, plot)
