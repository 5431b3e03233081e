"""Serve the real app on a free localhost port and drive it with Debian's Chromium (Playwright)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("BINCLS_CHROMIUM", "/usr/bin/chromium")
SCREENS = ROOT / "test-output" / "screens"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip with a how-to where Chromium is absent; in CI its absence is a failure, not a skip."""
    if Path(CHROMIUM).exists() and shutil.which("streamlit", path=str(Path(sys.executable).parent)):
        return
    msg = f"browser tests need Chromium at {CHROMIUM}: install it with `apt-get install chromium`"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(env_dirs: dict[str, str]):
    """`streamlit run app.py` on a free port; yields the base URL; stops the server afterwards."""
    with serve_app_process(env_dirs) as (url, _):
        yield url


@contextmanager
def serve_app_process(env_dirs: dict[str, str], log_suffix: str = ".server.log"):
    """`serve_app`, yielding (base URL, the server's Popen): a test can kill the server itself."""
    port = free_port()
    env = {**os.environ, **env_dirs, "PYTHONPATH": str(ROOT)}
    log = open(env_dirs["BINCLS_RUNS_DIR"] + log_suffix, "wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "streamlit"),
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("streamlit did not start: " + Path(log.name).read_text()[-2000:])
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def browser_page(width: int = 1400, height: int = 1000):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


@contextmanager
def chromium():
    """One headless Chromium; each `browser.new_context()` in it is a separate app session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_idle(page, timeout: float = 60) -> None:
    """Wait until Streamlit has finished running the script (no running indicator)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout * 1000)
    deadline = time.time() + timeout
    time.sleep(0.3)
    while time.time() < deadline:
        if page.locator("[data-testid='stStatusWidget']").count() == 0:
            return
        time.sleep(0.2)


def screenshot(page, name: str) -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# Session helpers shared by the browser tests ------------------------------------------------------------
SLOW_WAIT_MS = 180_000  # a first load on a busy 2-core machine (server, training run, sessions) is slow


APP_DIR_VARS = ("BINCLS_RUNS_DIR", "BINCLS_CACHE_DIR", "BINCLS_UPLOADS_DIR")


def app_dirs() -> dict[str, str]:
    """The app folders conftest gave this test, for a server that shares them with the test."""
    return {k: os.environ[k] for k in APP_DIR_VARS}


def app_dirs_under(base: Path) -> dict[str, str]:
    """Runs, cache and uploads folders of a server of its own, under `base` (base/runs, ...)."""
    return {k: str(base / k.split("_")[1].lower()) for k in APP_DIR_VARS}


def new_session(browser, timeout_ms: int = SLOW_WAIT_MS):
    """A page in its own browser context: its own cookies, so its own app session."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(timeout_ms)
    return context.new_page()


def goto_page(page, name: str, timeout_ms: int = SLOW_WAIT_MS) -> None:
    """Click a page in the sidebar navigation and wait for its title."""
    page.get_by_role("link", name=name, exact=True).first.click()
    page.get_by_role("heading", name=name, level=1).wait_for(timeout=timeout_ms)


def no_errors(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stAlertContentError']").count() == 0


def open_train_settings(page) -> None:
    """Unfold the Train page's "All settings" (the recipe leads; the details start folded). The page keeps
    the fold's state across pages and reloads: look at it once the page has run, so a click made while it
    was still drawing never folds away what was open."""
    wait_idle(page)
    fold = page.locator("[data-testid='stExpander'] details").filter(has_text="All settings").first
    fold.wait_for(state="attached")
    if fold.get_attribute("open") is None:
        fold.locator("summary").first.click()
    page.get_by_role("spinbutton", name="Image size (px)").wait_for(state="visible")


def set_number(page, label: str, value) -> None:
    """Type a number into a field and commit it (Enter) before anything else is clicked."""
    field = page.get_by_role("spinbutton", name=label)
    field.fill(str(value))
    field.press("Enter")
    page.wait_for_timeout(800)  # the rerun that takes the value in
