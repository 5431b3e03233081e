"""Names that look like markdown are text in the browser too (issue 24, class 6): a run, a class folder and a
file named like markdown images and links pointing at 127.0.0.1:9 show as typed on every page, and the
browser never asks that host for anything (a tracker image would have been fetched)."""

from __future__ import annotations

import shutil

import pytest
from browser import (
    SLOW_WAIT_MS,
    app_dirs_under,
    chromium,
    goto_page,
    new_session,
    no_errors,
    require_chromium,
    serve_app,
    wait_idle,
)

from bincls.training.config import TrainConfig
from bincls.training.loop import train

pytestmark = pytest.mark.browser
RUN_NAME = "![x](http://127.0.0.1:9/t.png) [link](http://x)"
CLASS = "![c](https:127.0.0.1:9) [l](https:x)"
FILE = "![f](https:127.0.0.1:9) *f*.jpg"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    require_chromium()
    from bincls.paths import SAMPLE_DATA

    base = tmp_path_factory.mktemp("names")
    root = base / "data"
    (root / CLASS).mkdir(parents=True)
    for i, src in enumerate(sorted((SAMPLE_DATA / "ants").iterdir())[:12]):  # all shown as samples
        shutil.copy(src, root / CLASS / (FILE if i == 0 else src.name))
    shutil.copytree(SAMPLE_DATA / "bees", root / "bees")
    dirs = app_dirs_under(base)
    cfg = TrainConfig(data=[str(root)], epochs=1, img_size=32, workers=0, name=RUN_NAME,
                      split=[0.5, 0.25, 0.25])  # fmt: skip
    train(cfg, runs_dir=dirs["BINCLS_RUNS_DIR"])
    with serve_app(dirs) as url, chromium() as browser:
        yield url, root, browser


def _text(page, testid: str) -> str:
    """What a person reads: the word joiners that keep a URL in a name from becoming a link are invisible."""
    return page.locator(f"[data-testid='{testid}']").inner_text().replace("\u2060", "")


def test_no_page_renders_a_name_as_markdown_or_fetches_from_it(app):
    url, root, browser = app
    page = new_session(browser)
    asked = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto(url)
    page.get_by_role("heading", name="Data", level=1).wait_for(timeout=SLOW_WAIT_MS)
    page.get_by_role("textbox", name="Dataset folder").fill(str(root))
    page.get_by_role("button", name="Use this folder").click()
    page.get_by_text("Now using the folder").wait_for()
    wait_idle(page)
    shown = {}
    page.get_by_role("tab", name="Sample images").click()
    page.get_by_text("12 of 12 usable images").first.wait_for()
    shown["Data"] = _text(page, "stMain")
    for name in ("Preview", "Train", "Evaluate", "Runs"):
        goto_page(page, name)
        wait_idle(page)
        page.wait_for_timeout(1500)
        no_errors(page)
        shown[name] = _text(page, "stMain")
    sidebar = _text(page, "stSidebar")
    assert CLASS in shown["Data"] and FILE in shown["Data"] and CLASS in sidebar
    assert RUN_NAME in shown["Train"] and RUN_NAME in sidebar
    assert CLASS in shown["Evaluate"] and CLASS in shown["Preview"]
    links = page.locator("a[href*='127.0.0.1:9'], img[src*='127.0.0.1:9'], a[href*='//x']")
    where = "e => e.closest('[data-testid^=st]').outerHTML.slice(0, 600)"
    assert links.count() == 0, [links.nth(i).evaluate(where) for i in range(links.count())]
    fetched = [u for u in asked if "127.0.0.1:9/" in u or u.startswith(("http://x", "https://x"))]
    assert not fetched, fetched
