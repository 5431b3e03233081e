"""The real app in a real browser: Data, Preview, a live 2-epoch run on Train, then Runs.

Runs `streamlit run app.py` on a free localhost port and drives Debian's Chromium with Playwright.
Screenshots of every page go to test-output/screens/.
"""

from __future__ import annotations

import re
import time

import pytest
from browser import (
    app_dirs_under,
    browser_page,
    goto_page,
    no_errors,
    open_train_settings,
    require_chromium,
    screenshot,
    serve_app,
    set_number,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    require_chromium()
    base = tmp_path_factory.mktemp("e2e")
    dirs = app_dirs_under(base)
    with serve_app(dirs) as url:
        yield url, dirs


def _plot_points(page) -> list[int]:
    """Points per trace of every plotly chart on the page, read from the charts themselves."""
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".flatMap(g => (g.data || []).map(t => (t.x || []).length))"
    )


def test_data_preview_train_runs_in_the_browser(app_url):
    url, _ = app_url
    with browser_page() as page:
        page.goto(url)
        # Torch and the models load on the first page: generous on a busy 2-core machine.
        page.get_by_role("heading", name="Data", level=1).wait_for(timeout=180_000)
        page.get_by_text("30 / 30").first.wait_for(timeout=120_000)  # the bundled sample: 30 ants, 30 bees
        no_errors(page)
        screenshot(page, "1-data")

        goto_page(page, "Preview", 120_000)
        page.get_by_text("Normalized batch tensor").wait_for(timeout=120_000)
        page.locator("[data-testid='stImage']").first.wait_for(timeout=60_000)
        no_errors(page)
        screenshot(page, "2-preview")

        goto_page(page, "Train", 120_000)
        page.get_by_text("Auto chose").first.wait_for(timeout=60_000)  # the recipe leads, with its reason
        open_train_settings(page)
        set_number(page, "Image size (px)", 224)
        set_number(page, "Epochs (at most)", 6)  # several redraws while live
        screenshot(page, "3-train-form")
        page.get_by_role("button", name="Train", exact=True).click()

        # The live panel reruns every 2 s and builds its charts again when an epoch ends or after 10 s of
        # new steps (pages/support/train_live.py). Sample the charts while the panel is live (its Stop
        # button is there): nonzero counts only, as a chart between two redraws, or the page switching to
        # the finished view, can briefly show none. The curves must gain points while the run trains.
        live: list[int] = []
        stop = page.locator("[data-testid='stMain']").get_by_role("button", name="Stop")
        deadline = time.time() + 240
        while time.time() < deadline:
            if page.get_by_text("Evaluate the best checkpoint").count():
                break
            points = sum(_plot_points(page))
            if points and stop.count() and (not live or points != live[-1]):
                live.append(points)
                if len(live) == 2:
                    screenshot(page, "4-train-running")
            time.sleep(0.3)
        assert page.get_by_text("Evaluate the best checkpoint").count(), (
            f"run did not finish; points seen while live {live}"
        )
        assert len(live) >= 2 and live[-1] > live[0], f"charts did not grow while running: {live}"
        no_errors(page)
        screenshot(page, "5-train-finished")

        goto_page(page, "Runs", 120_000)
        grid = page.locator("[data-testid='stMain'] [data-testid='stDataFrame']").first
        grid.wait_for(state="visible", timeout=60_000)
        # The grid draws on a canvas; its accessible table carries the cells.
        page.locator("[data-testid='stMain'] [role='gridcell']", has_text="small-cnn").first.wait_for(
            state="attached", timeout=60_000
        )
        time.sleep(1)
        no_errors(page)
        screenshot(page, "6-runs")


def test_evaluate_and_predict_in_the_browser(app_url, tmp_path):
    from bincls.paths import SAMPLE_DATA
    from bincls.training.config import TrainConfig
    from bincls.training.loop import train

    url, dirs = app_url
    train(
        TrainConfig(data=[str(SAMPLE_DATA)], epochs=2, img_size=64, workers=0),
        runs_dir=dirs["BINCLS_RUNS_DIR"],
    )
    with browser_page(height=1200) as page:
        page.goto(url)
        page.get_by_role("heading", name="Data", level=1).wait_for(timeout=180_000)

        goto_page(page, "Evaluate", 120_000)
        page.get_by_text("Confusion matrix").first.wait_for(timeout=120_000)
        page.get_by_text("Click a cell of the confusion matrix").wait_for(timeout=60_000)
        no_errors(page)
        screenshot(page, "7-evaluate")
        # Click a confusion-matrix cell that holds images (a 2-epoch model may leave some cells empty);
        # the clickable markers carry each cell's count.
        matrix = page.locator(".js-plotly-plot").first
        matrix.scroll_into_view_if_needed()
        counts = matrix.evaluate("g => g.data.find(t => t.mode === 'markers' && t.customdata).customdata")
        cell = next(i for i, n in enumerate(counts) if n > 0)
        matrix.locator(".scatterlayer .points path").nth(cell).click(force=True)
        page.get_by_role("heading", name=f": {counts[cell]} images").wait_for(timeout=60_000)
        expect(page.locator("[data-testid='stImage']").first).to_be_visible(timeout=60_000)
        no_errors(page)
        screenshot(page, "8-evaluate-cell")

        goto_page(page, "Predict", 120_000)
        bad = tmp_path / "notes.jpg"
        bad.write_text("this is not a picture")
        images = [str(p) for p in sorted((SAMPLE_DATA / "bees").iterdir())[:2]] + [str(bad)]
        page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(images)
        page.get_by_text("evidence for").first.wait_for(timeout=120_000)  # a heat map per good image
        page.get_by_text("notes.jpg").first.wait_for(timeout=60_000)
        assert page.get_by_text("not an image").count() >= 1  # the bad file gets its own message
        captions = page.get_by_text(re.compile(r"^evidence for (ants|bees)$"))  # one under each heat map
        expect(captions).to_have_count(2, timeout=60_000)  # cards render one by one
        # Both images and both heat maps are really drawn (loaded, non-empty), not placeholders.
        page.wait_for_function(
            """() => {
                const imgs = Array.from(document.querySelectorAll("[data-testid='stImage'] img"));
                return imgs.length >= 4 && imgs.every(i => i.complete && i.naturalWidth > 0);
            }""",
            timeout=60_000,
        )
        screenshot(page, "9-predict")
