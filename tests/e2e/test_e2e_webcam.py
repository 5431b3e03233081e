"""Webcam photos into two classes on the Data page, in Chromium with its fake camera (a moving test
pattern) and the camera permission granted: each click saves a new photo in bincls' uploads folder, the
page counts them, undo takes the last back, and "Use the uploaded images" makes them the data.
Screenshots go to /tmp/webcam_*.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SLOW_WAIT_MS,
    app_dirs_under,
    require_chromium,
    serve_app,
    wait_idle,
)

from bincls.data.images import load_rgb

pytestmark = pytest.mark.browser
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    require_chromium()
    from playwright.sync_api import sync_playwright

    dirs = app_dirs_under(tmp_path_factory.mktemp("webcam"))
    with serve_app(dirs) as url, sync_playwright() as p:
        args = [*CHROMIUM_ARGS, *FAKE_CAMERA]
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield url, Path(dirs["BINCLS_UPLOADS_DIR"]), browser
        finally:
            browser.close()


def _name_class(page, letter: str, name: str) -> None:
    field = page.get_by_label(f"Class {letter} name")
    field.fill(name)
    field.press("Enter")
    wait_idle(page)


def _camera(page, letter: str):
    return page.locator("[data-testid='stCameraInput']").filter(has_text=f"Take a photo of class {letter}")


COUNTS = "[...document.querySelectorAll('[data-testid=stMarkdownContainer]')].map(e => e.innerText.trim())" \
    ".filter(t => /^\\d+ webcam photos?$/.test(t))"


def _counts(page) -> list[str]:
    """The running count under each class's camera."""
    return page.evaluate(f"() => {COUNTS}")


def _wait_counts(page, counts: list[str]) -> None:
    page.wait_for_function(f"want => JSON.stringify({COUNTS}) === JSON.stringify(want)", arg=counts)
    wait_idle(page)


def _cameras_live(page) -> None:
    """Every camera on the page shows its stream (a fresh camera takes a moment to start)."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stCameraInput] video')]"
        ".every(v => v.readyState >= 2 && v.videoWidth > 0)"
    )


def _take(page, letter: str, counts: list[str]) -> None:
    """Click "Take Photo" on the class's live camera; the counts must then read `counts`."""
    _cameras_live(page)  # a click before the stream plays would capture nothing
    _camera(page, letter).get_by_role("button", name="Take Photo").click()
    _wait_counts(page, counts)


def test_webcam_photos_become_the_two_classes(app):
    url, uploads, browser = app
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"])
    context.set_default_timeout(SLOW_WAIT_MS)
    page = context.new_page()
    page.goto(url)
    page.get_by_role("heading", name="Data", level=1).wait_for()
    page.get_by_text("30 / 30").first.wait_for()
    page.get_by_role("tab", name="Upload images").click()
    _name_class(page, "A", "cats")
    _name_class(page, "B", "dogs")
    assert page.locator("[data-testid='stCameraInput']").count() == 0  # no camera until asked
    for i in range(2):
        page.get_by_text("Take photos with the webcam").nth(i).click()
        wait_idle(page)
    assert page.locator("[data-testid='stCameraInput']").count() == 2

    _take(page, "A", ["1 webcam photo", "0 webcam photos"])
    _take(page, "A", ["2 webcam photos", "0 webcam photos"])
    _take(page, "B", ["2 webcam photos", "1 webcam photo"])
    _take(page, "A", ["3 webcam photos", "1 webcam photo"])
    page.get_by_role("button", name="Undo last photo").first.click()
    _wait_counts(page, ["2 webcam photos", "1 webcam photo"])
    _cameras_live(page)
    page.get_by_text("Take a photo of class A").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/webcam_1_taken.png")

    photos = sorted(p for p in uploads.rglob("*") if p.is_file())
    assert [(p.parent.name, p.name) for p in photos] == [
        ("cats", "webcam-0001.jpg"), ("cats", "webcam-0002.jpg"), ("dogs", "webcam-0001.jpg")]  # fmt: skip
    sizes = {load_rgb(p).size for p in photos}  # each decodes, at the camera's size
    assert all(w >= 320 and h >= 240 for w, h in sizes), sizes

    page.get_by_role("button", name="Use the uploaded images").click()
    page.get_by_text("Now using the uploaded images").wait_for()
    wait_idle(page)
    metrics = page.locator("[data-testid='stMetric']")
    assert metrics.filter(has_text="cats").first.inner_text().splitlines()[-1] == "2 / 2"
    assert metrics.filter(has_text="dogs").first.inner_text().splitlines()[-1] == "1 / 1"
    data = sorted(p.relative_to(uploads).parts[1:] for p in uploads.rglob("*.jpg"))
    assert data == [("cats", "webcam-0001.jpg"), ("cats", "webcam-0002.jpg"), ("dogs", "webcam-0001.jpg")]
    assert _counts(page) == ["0 webcam photos", "0 webcam photos"]  # the next photos start a new set
    page.get_by_role("heading", name="2. Check the images").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/webcam_2_used.png")
    assert page.locator("[data-testid='stException']").count() == 0
    context.close()
