"""Issue 14 in a real browser: review the label audit and see the next run honour it; a prediction
flagged as unlike the training images; intervals and the reliability diagram on Evaluate.

One app server with pretrained weights at hand (the audit needs them); screenshots go to
test-output/screens/trust-*.png.
"""

from __future__ import annotations

import json
import re
import shutil
import time

import numpy as np
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
)
from conftest import shared_path
from PIL import Image
from playwright.sync_api import expect

from bincls.data.overlay import load_decisions
from bincls.inference.predict import Predictor
from bincls.paths import SAMPLE_DATA
from bincls.runs.folder import RunFolder, list_runs
from bincls.runs.summary import summarize
from bincls.training.config import TrainConfig
from bincls.training.loop import train

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WAIT = 180_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    base = tmp_path_factory.mktemp("e2e-trust")
    hub = base / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    for name in ("mobilenet_v2-b0353104.pth", "mobilenet_v2-7ebf99e0.pth"):  # as torchvision names them
        shutil.copy(shared_path("weights", "mobilenet_v2_imagenet.pth"), hub / name)
    dirs = app_dirs_under(base)
    with serve_app({**dirs, "TORCH_HOME": str(base / "torch")}) as url, chromium() as browser:
        yield url, dirs, browser


def _page(server):
    url, _, browser = server
    page = new_session(browser)
    page.goto(url)
    page.get_by_role("heading", name="Data", level=1).wait_for(timeout=WAIT)
    return page


def test_an_excluded_image_stays_out_of_the_next_run(server, monkeypatch):
    _, dirs, _ = server
    for key, value in dirs.items():  # read the overlay and the runs where the server writes them
        monkeypatch.setenv(key, value)
    page = _page(server)
    page.get_by_role("button", name="Run the label audit").click()
    page.get_by_text("images are worth a look").wait_for(timeout=WAIT)
    no_errors(page)
    row = page.get_by_role("radiogroup", name=re.compile(r"^Decision on ")).first  # the first reviewed image
    row.scroll_into_view_if_needed()
    row.get_by_role("radio", name="Exclude").click()
    page.get_by_text("1 decision in force").wait_for(timeout=60_000)
    decided = load_decisions([str(SAMPLE_DATA)])
    assert list(decided.values()) == ["exclude"]
    excluded = next(iter(decided))
    screenshot(page, "trust-1-audit-grid")

    goto_page(page, "Train", WAIT)
    page.get_by_text("Auto chose").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Evaluate the best checkpoint").wait_for(timeout=400_000)
    no_errors(page)
    run = list_runs(dirs["BINCLS_RUNS_DIR"])[0]
    assert json.loads((run.path / "audit_decisions.json").read_text()) == {excluded: "exclude"}
    split = run.path / "split.csv"
    paths = split.read_text().splitlines()
    assert len(paths) == 60 and not any(line.startswith(f"{excluded},") for line in paths), (
        "59 images and the header: the excluded image is in no split"
    )


def checkerboard(path) -> str:
    board = (np.indices((256, 256)).sum(0) // 32 % 2 * 255).astype(np.uint8)
    Image.fromarray(board, "L").convert("RGB").save(path)
    return str(path)


@pytest.fixture(scope="module")
def detector_run(server) -> RunFolder:
    """A scratch model on the sample with 30 validation images: calibrated, with an OOD detector."""
    _, dirs, _ = server
    cfg = TrainConfig(data=[str(SAMPLE_DATA)], epochs=2, img_size=64, model="small-cnn", workers=0,
                      split=[0.4, 0.5, 0.1], name="with-detector")  # fmt: skip
    return train(cfg, runs_dir=dirs["BINCLS_RUNS_DIR"]).run


def _pick(page, run: RunFolder) -> None:
    """Choose `run` in the page's run picker, whose options start with the run's name (run_label in
    pages/support/formatting.py); the picker may already be on it (it opens on the best finished run)."""
    name = summarize(run).name
    assert name, "the run has a name to pick it by"
    label = re.compile(rf"^{re.escape(name)} · ")
    picker = page.get_by_role("combobox").first
    picker.click()
    page.get_by_role("option", name=label).click()
    expect(picker).to_have_value(label)


def test_an_image_unlike_the_training_ones_is_flagged(server, detector_run, tmp_path):
    board = checkerboard(tmp_path / "checkerboard.png")
    bees = sorted((SAMPLE_DATA / "bees").iterdir())
    predictor = Predictor(detector_run.best_checkpoint)
    flags = predictor.predict_many([board, *map(str, bees)])
    assert flags[0].ood, "the detector itself flags the checkerboard: the badge below is its verdict"
    ordinary = next(str(b) for b, p in zip(bees, flags[1:]) if p.ood is False)

    page = _page(server)
    goto_page(page, "Predict", WAIT)
    _pick(page, detector_run)
    page.get_by_text("flagged as unlike the training images").first.wait_for(timeout=WAIT)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files([board, ordinary])
    page.get_by_text("evidence for").first.wait_for(timeout=WAIT)
    alerts = page.locator("[data-testid='stAlertContentWarning']", has_text="Unlike the training images")
    expect(alerts).to_have_count(1, timeout=60_000)
    assert f"{flags[0].ood_score:,.0f}" in alerts.first.inner_text()
    no_errors(page)
    page.wait_for_timeout(1500)  # the heat maps finish drawing
    screenshot(page, "trust-2-predict-flagged")


def test_evaluate_shows_intervals_and_calibration(server, detector_run):
    page = _page(server)
    goto_page(page, "Evaluate", WAIT)
    _pick(page, detector_run)
    page.get_by_text("Confusion matrix").first.wait_for(timeout=WAIT)
    main = page.locator("[data-testid='stMain']")
    accuracy = re.compile(r"^\d\.\d\d \(\d\.\d\d-\d\.\d\d\) on 6 images$")  # "0.50 (0.19-0.81) on 6 images"
    expect(main.get_by_text(accuracy).first).to_be_visible()
    page.get_by_text("In brackets, the 95% interval").wait_for()
    chart = page.locator(".js-plotly-plot", has_text="Calibration: error")
    chart.scroll_into_view_if_needed()
    traces = chart.evaluate("g => g.data.map(t => t.name)")
    assert traces[1].startswith("before calibration") and traces[2].startswith("after")
    no_errors(page)
    time.sleep(1)
    screenshot(page, "trust-3-evaluate")
