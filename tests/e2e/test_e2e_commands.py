"""Every command the app shows runs when pasted (issue 23, item 2): in Chromium, each command is copied with
its copy button and run in a plain shell in the project folder (no virtual environment active, no
PYTHONPATH): the Train page's command line (one process and torchrun), the Python snippet and the predict
command beside Download model, and the serve command and curl line of Evaluate (the same on Predict): the
server is started, asked, and stopped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from browser import (
    app_dirs_under,
    chromium,
    free_port,
    goto_page,
    no_errors,
    open_train_settings,
    require_chromium,
    serve_app,
    set_number,
    wait_idle,
)
from shell import run_pasted, start_pasted

from bincls.paths import SAMPLE_DATA
from bincls.runs.folder import RunFolder
from bincls.training.config import TrainConfig
from bincls.training.loop import train

pytestmark = pytest.mark.browser
SERVE_URL = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app on its own folders, with one tiny finished run of the sample (1 epoch at 32 px)."""
    require_chromium()
    base = tmp_path_factory.mktemp("commands")
    dirs = app_dirs_under(base)
    run = train(TrainConfig(data=[str(SAMPLE_DATA)], epochs=1, img_size=32, workers=0),
                runs_dir=dirs["BINCLS_RUNS_DIR"]).run  # fmt: skip
    with serve_app(dirs) as url, chromium() as browser:
        yield url, dirs, browser, run


def _session(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                  permissions=["clipboard-read", "clipboard-write"])  # fmt: skip
    context.set_default_timeout(180_000)
    return context.new_page()


def _copy_all(page, scope) -> list[str]:
    """Each code block in `scope`, copied with its own copy button, as the clipboard then holds it."""
    texts = []
    blocks = scope.locator("[data-testid='stCode']")
    blocks.first.wait_for()  # the code blocks' renderer loads on first use
    page.wait_for_timeout(500)
    for i in range(blocks.count()):
        block = blocks.nth(i)
        block.hover()
        block.get_by_role("button", name=re.compile("copy", re.I)).click()
        page.wait_for_timeout(300)
        texts.append(page.evaluate("navigator.clipboard.readText()"))
    return texts


def _popover(page, label: str):
    page.get_by_role("button", name=label).first.click()
    content = page.locator("[data-testid='stPopoverBody']").last
    content.wait_for()
    return content


def _env(dirs: dict[str, str]) -> dict[str, str]:
    return {**dirs, "TORCH_HOME": os.environ["TORCH_HOME"]}


def test_the_train_pages_commands_run_as_pasted(app, tmp_path):
    url, dirs, browser, run = app
    page = _session(browser)
    page.goto(url)
    goto_page(page, "Train")
    open_train_settings(page)
    set_number(page, "Image size (px)", 32)
    set_number(page, "Epochs (at most)", 1)
    wait_idle(page)
    single, torchrun = _copy_all(page, _popover(page, "Command line"))
    page.keyboard.press("Escape")
    assert not single.startswith("python ") and " -m bincls train " in single, single
    out = run_pasted(single, **_env(dirs)).stdout.strip().splitlines()[-1]
    trained = RunFolder(Path(out))
    assert trained.status()["state"] == "finished" and trained.config()["img_size"] == 32
    assert "-m torch.distributed.run --nproc_per_node=2 -m bincls train" in torchrun, torchrun
    # torchrun's rendezvous port as an option of the environment (PET_*), so that the command runs as shown
    out = run_pasted(torchrun, **_env(dirs), PET_MASTER_PORT=str(free_port())).stdout.strip().splitlines()[-1]
    assert RunFolder(Path(out)).status()["state"] == "finished"

    # The newest finished run's "Use it from Python": the snippet as pasted, then the predict command.
    page.reload()
    page.get_by_role("heading", name="Train", level=1).wait_for()
    snippet, pasted, predict = _copy_all(page, _popover(page, "Use it from Python"))
    assert snippet.strip() in pasted
    label, probability = run_pasted(pasted, **_env(dirs)).stdout.split()
    assert label in ("ants", "bees") and 0 <= float(probability) <= 1
    assert run_pasted(predict, **_env(dirs)).stdout.split("\t")[1] in ("ants", "bees")
    no_errors(page)


def _wait_health(proc, log: Path, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            health = json.loads(urllib.request.urlopen(f"{SERVE_URL}/health", timeout=2).read())
            if health.get("status") == "ok":
                return
        except OSError:
            time.sleep(1)
    raise AssertionError("the server did not answer: " + log.read_text()[-3000:])


def test_the_serve_command_and_curl_run_as_pasted(app, tmp_path):
    url, dirs, browser, run = app
    page = _session(browser)
    page.goto(url)
    goto_page(page, "Evaluate")
    page.get_by_text("Serve it over HTTP").wait_for()
    serve, curl = _copy_all(page, page.locator("[data-testid='stMain']"))[-2:]
    assert f" -m bincls serve {run.path}" in serve and not serve.startswith("python "), serve
    goto_page(page, "Predict")
    page.get_by_text("Use this model elsewhere").first.click()
    page.get_by_text("Serve it over HTTP").wait_for()
    assert _copy_all(page, page.locator("[data-testid='stMain']"))[-2:] == [serve, curl], "one way, one place"

    for _ in range(60):  # port 8000, as shown: wait for another test's server to let go of it
        try:
            urllib.request.urlopen(f"{SERVE_URL}/health", timeout=1)
            time.sleep(2)
        except OSError:
            break
    log = tmp_path / "serve.log"
    proc = start_pasted(serve, log, **_env(dirs))
    try:
        _wait_health(proc, log)
        answer = json.loads(run_pasted(curl, **_env(dirs)).stdout)  # one answer per file sent
        assert [a["class_name"] in ("ants", "bees") for a in answer] == [True], answer
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode in (0, -signal.SIGTERM), log.read_text()[-2000:]
