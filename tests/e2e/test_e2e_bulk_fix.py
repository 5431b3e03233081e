"""Issue 22 item 5 in a real browser: accept the audit's suggested relabels in bulk, see the overlay, undo;
relabel an image from Evaluate's most-wrong gallery; the user's data folder is byte-identical afterwards.

One app server with pretrained weights at hand (the audit needs them); screenshots go to
test-output/screens/bulkfix-*.png.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
from browser import (
    app_dirs_under,
    chromium,
    goto_page,
    new_session,
    no_errors,
    require_chromium,
    screenshot,
    serve_app,
    set_number,
    wait_idle,
)
from conftest import shared_path
from playwright.sync_api import expect

from bincls.data.overlay import load_decisions
from bincls.paths import SAMPLE_DATA
from bincls.runs.summary import summarize
from bincls.training.config import TrainConfig
from bincls.training.loop import train

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WAIT = 180_000


def _digest(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    base = tmp_path_factory.mktemp("e2e-bulk-fix")
    hub = base / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    for name in ("mobilenet_v2-b0353104.pth", "mobilenet_v2-7ebf99e0.pth"):  # as torchvision names them
        shutil.copy(shared_path("weights", "mobilenet_v2_imagenet.pth"), hub / name)
    dirs = app_dirs_under(base)
    with serve_app({**dirs, "TORCH_HOME": str(base / "torch")}) as url, chromium() as browser:
        yield url, dirs, browser


def test_bulk_relabel_undo_and_a_relabel_from_evaluate(server, monkeypatch):
    url, dirs, browser = server
    for key, value in dirs.items():  # read the overlay and write the run where the server has them
        monkeypatch.setenv(key, value)
    before = _digest(SAMPLE_DATA)
    data = [str(SAMPLE_DATA)]
    cfg = TrainConfig(data=data, epochs=1, img_size=48, model="small-cnn", workers=0, split=[0.4, 0.3, 0.3],
                      name="bulk-fix")  # fmt: skip
    run = train(cfg, runs_dir=dirs["BINCLS_RUNS_DIR"]).run  # a scratch model: some test images wrong
    page = new_session(browser)
    page.goto(url)
    page.get_by_role("heading", name="Data", level=1).wait_for(timeout=WAIT)

    page.get_by_role("button", name="Run the label audit").click()
    page.get_by_text("Decide many at once").wait_for(timeout=WAIT)
    no_errors(page)
    set_number(page, "Accept the suggested relabels with score ≥", "0.50")
    wait_idle(page)
    accept = page.get_by_role("button", name=re.compile(r"^Relabel \d+ images?$"))
    n = int(re.search(r"Relabel (\d+) image", accept.inner_text()).group(1))  # the text holds the icon's too
    assert n >= 1, "the sample has likely wrong labels scoring over 0.5"
    expect(page.get_by_text(re.compile(rf"^Would relabel {n} images?"))).to_be_visible()
    accept.scroll_into_view_if_needed()
    screenshot(page, "bulkfix-1-before-bulk")
    accept.click()
    page.get_by_text(re.compile(r"relabelled \(score ≥ 0\.50\)")).wait_for(timeout=60_000)
    decided = load_decisions(data)
    assert list(decided.values()) == ["relabel"] * n
    undo = page.get_by_role("button", name=re.compile(r"^Undo: "))
    expect(undo).to_contain_text(f"{n} image")
    no_errors(page)
    undo.scroll_into_view_if_needed()
    screenshot(page, "bulkfix-2-after-bulk")
    undo.click()
    page.get_by_text(re.compile(r"^Undone: ")).wait_for(timeout=60_000)
    assert load_decisions(data) == {}, "undo: exactly the decisions from before (none)"
    expect(page.get_by_role("button", name=re.compile(r"^Undo: "))).to_have_count(0)

    goto_page(page, "Evaluate", WAIT)
    picker = page.get_by_role("combobox").first
    label = re.compile(rf"^{re.escape(summarize(run).name)} · ")
    if not label.search(picker.input_value()):
        picker.click()
        page.get_by_role("option", name=label).click()
    page.get_by_role("heading", name="Most wrong").wait_for(timeout=WAIT)
    note = page.get_by_text(re.compile(r"the next training run on that data uses them"))
    note.scroll_into_view_if_needed()
    expect(note).to_contain_text("0 decisions in force")
    screenshot(page, "bulkfix-3-evaluate-note")
    relabel = page.get_by_role("button", name=re.compile(r"^Relabel to (ants|bees)$")).first
    relabel.scroll_into_view_if_needed()
    to = re.search(r"Relabel to (ants|bees)", relabel.inner_text()).group(1)
    relabel.click()
    page.get_by_text(re.compile(rf"^Relabelled to {to}")).first.wait_for(timeout=60_000)
    decided = load_decisions(data)
    assert list(decided.values()) == ["relabel"] and Path(next(iter(decided))).parent.name != to
    no_errors(page)
    page.get_by_role("heading", name="Most wrong").scroll_into_view_if_needed()
    screenshot(page, "bulkfix-4-evaluate-relabelled")
    assert _digest(SAMPLE_DATA) == before, "the user's data folder is byte-identical"
