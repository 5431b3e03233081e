"""The app server restarts while a run trains (issue 7): the run goes on, and the new server re-attaches.

A run is started from the Train page, so its training process is a child of the app server; the server
is then killed (SIGKILL, as a crash or an OOM kill would). The training process lives on in its own
session and keeps writing metrics.jsonl; a new server on the same runs folder shows the run live on
the Train page (progress, curves, Stop), and its Stop button ends it. Screenshots go to
test-output/screens/restart-*.png.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from browser import (
    app_dirs,
    chromium,
    goto_page,
    new_session,
    no_errors,
    open_train_settings,
    require_chromium,
    screenshot,
    serve_app_process,
    set_number,
)

from bincls.runs.active import active_run
from bincls.runs.folder import ACTIVE, RunFolder
from bincls.runs.process import pid_alive
from bincls.training.launcher import stop_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 180_000  # ms


def _process_gone(pid: int) -> bool:
    """Exited; a zombie waiting for whoever adopted it after its parent (the killed server) died counts."""
    if not pid_alive(pid):
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _lines(run: RunFolder) -> int:
    return len(run.read_metrics())


def _wait_for(check, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_run_survives_a_server_kill_and_the_new_server_reattaches():
    require_chromium()
    dirs = app_dirs()
    run = None
    try:
        with chromium() as browser:
            with serve_app_process(dirs) as (url, server):
                page = new_session(browser)
                page.goto(url)
                page.get_by_role("heading", name="Data", level=1).wait_for(timeout=WAIT)
                goto_page(page, "Train")
                open_train_settings(page)
                set_number(page, "Image size (px)", 64)
                set_number(page, "Epochs (at most)", 1000)
                set_number(page, "Patience", 0)  # no early stopping
                page.get_by_role("button", name="Train", exact=True).click()
                main = page.locator("[data-testid='stMain']")  # not the header's Stop (a script is running)
                main.get_by_role("button", name="Stop").wait_for(timeout=WAIT)
                run = active_run()
                assert run is not None
                _wait_for(lambda: any(r.get("kind") == "step" for r in run.read_metrics()), 300, "steps")
                pid = run.status()["pid"]
                assert pid != server.pid
                screenshot(page, "restart-1-training")
                os.killpg(server.pid, signal.SIGKILL)  # the server alone: the run has its own session
                server.wait(30)
                page.close()

            # No server: the run goes on, and writes its metrics.
            assert pid_alive(pid) and not _process_gone(pid)
            n = _lines(run)
            _wait_for(lambda: _lines(run) >= n + 3, 120, "metrics.jsonl to grow without a server")
            assert run.status()["state"] == "running"

            with serve_app_process(dirs, log_suffix=".server2.log") as (url, _):
                page = new_session(browser)
                page.goto(url)
                page.get_by_role("heading", name="Data", level=1).wait_for(timeout=WAIT)
                page.locator("[data-testid='stSidebar']").get_by_text("running").wait_for(timeout=WAIT)
                goto_page(page, "Train")
                # The live panel's heading: "{state icon} {name or 'Run'} · {run id}" (support/train_live.py).
                title = page.get_by_role("heading").filter(has_text=re.compile(rf" · {re.escape(run.id)}"))
                title.first.wait_for(timeout=WAIT)
                stop = page.locator("[data-testid='stMain']").get_by_role("button", name="Stop")
                stop.wait_for(timeout=WAIT)
                progress = page.get_by_text(re.compile(r"^Epoch \d+/1000 · step \d+/\d+"))
                progress.wait_for(timeout=WAIT)
                first = progress.inner_text()
                _wait_for(lambda: progress.inner_text() != first, 120, "the live progress to move")
                page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT)  # the live curves
                no_errors(page)
                screenshot(page, "restart-2-reattached")

                stop.click()  # the new server's Stop reaches the run the old server started
                page.get_by_text("Stopped on request").wait_for(timeout=WAIT)
                no_errors(page)
                screenshot(page, "restart-3-stopped")
            assert run.status()["state"] == "stopped"
            _wait_for(lambda: _process_gone(pid), 60, "the training process to exit")
    finally:
        if run is not None and run.status().get("state") in ACTIVE:
            stop_run(run)
            _wait_for(lambda: run.status().get("state") not in ACTIVE, 120, "the run to stop")
