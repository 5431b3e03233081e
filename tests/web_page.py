"""Open a web export from file:// in headless Chromium with the network off, and ask it what it sees.

Every request that is not for a file (or a blob:/data: URL the page makes itself) is refused and kept in
`refused`, and the browser context is offline besides: a page that needed the network fails visibly.
"""

from __future__ import annotations

import base64
import mimetypes
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from browser import CHROMIUM, CHROMIUM_ARGS

LOCAL_SCHEMES = ("file:", "blob:", "data:")
# Chromium's test camera (a moving pattern) and an automatic "allow": the webcam path without a webcam.
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@dataclass
class OfflinePage:
    page: object
    refused: list[str] = field(default_factory=list)  # requests that tried to leave the folder
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # uncaught page errors


@contextmanager
def offline_page(
    folder: Path, width: int = 1000, height: int = 900, dark: bool = False, timeout_s: float = 180
):
    """index.html of `folder` from file://, loaded until its model is ready (or has failed)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + FAKE_CAMERA)
        try:
            context = browser.new_context(
                viewport={"width": width, "height": height}, color_scheme="dark" if dark else "light"
            )
            context.set_offline(True)
            result = OfflinePage(None)

            def route(r):
                if r.request.url.startswith(LOCAL_SCHEMES):
                    r.continue_()
                else:
                    result.refused.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.set_default_timeout(timeout_s * 1000)
            page.on("request", lambda r: result.requests.append(r.url))
            page.on("pageerror", lambda e: result.errors.append(str(e)))
            page.goto((Path(folder) / "index.html").resolve().as_uri())
            wait_until(page, "document.body.dataset.state !== 'loading'", timeout_s)
            result.page = page
            yield result
        finally:
            browser.close()


def wait_until(page, expression: str, timeout_s: float = 180) -> None:
    """Poll a JS expression from here: the page's Content-Security-Policy forbids the eval that Playwright's
    wait_for_function runs inside the page (evaluate goes through the debugger protocol instead)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout_s:.0f} s: {expression}")
        time.sleep(0.1)


def classify_with_file_input(page, files: list[Path]) -> list[dict]:
    """Give `files` to the page's file input, as a person choosing them does; the answers in that order,
    read from the page's result cards ({file, class_name, p_class1, ood} or {file, error})."""
    before = page.locator("[data-testid=result]").count()
    page.set_input_files("#files", [str(f) for f in files])
    done = "[data-testid=result][data-p1], [data-testid=result][data-error]"
    wait_until(page, f"document.querySelectorAll('{done}').length === {before + len(files)}")
    cards = page.evaluate("""Array.from(document.querySelectorAll('[data-testid=result]')).map(li => ({
        order: Number(li.dataset.order), file: li.dataset.file, class_name: li.dataset.className,
        p_class1: li.dataset.p1 === undefined ? null : Number(li.dataset.p1),
        ood: li.dataset.ood, error: li.dataset.error || null}))""")
    mine = sorted((c for c in cards if c["order"] >= before), key=lambda c: c["order"])
    return mine


def webcam_answers(page, n: int = 3) -> list[str]:
    """Start the page's webcam (Chromium's test camera) and read its live answer `n` times, then stop it."""
    page.click("#camera")
    seen: list[str] = []
    while len(seen) < n:
        wait_until(page, "!!document.querySelector('#live-answer .answer .class')", 120)
        seen.append(page.text_content("#live-answer .answer .class"))
        page.evaluate("document.getElementById('live-answer').replaceChildren()")
    page.click("#camera-stop")
    return seen


def _blob_args(path: Path) -> dict:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {"b64": base64.b64encode(Path(path).read_bytes()).decode(), "name": path.name, "type": kind}


_MAKE_FILE = """a => { const s = atob(a.b64); const b = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
    return new File([b], a.name, {type: a.type}); }"""


def classify_with_api(page, path: Path) -> dict:
    """`window.bincls.classify(file)` on the file's bytes, as a page embedding the folder calls it."""
    return page.evaluate(f"async a => window.bincls.classify(({_MAKE_FILE})(a))", _blob_args(path))


def browser_pixels(page, path: Path) -> np.ndarray:
    """The uint8 RGB [H, W, 3] the page gives the model for this file (Chromium's decoder)."""
    got = page.evaluate(
        f"""async a => {{ const px = await window.bincls.pixelsOf(({_MAKE_FILE})(a));
        let s = ''; for (let i = 0; i < px.rgb.length; i += 32768)
          s += String.fromCharCode.apply(null, px.rgb.subarray(i, i + 32768));
        return {{w: px.width, h: px.height, b64: btoa(s)}}; }}""",
        _blob_args(path),
    )
    return np.frombuffer(base64.b64decode(got["b64"]), np.uint8).reshape(got["h"], got["w"], 3)


def classify_pixels(page, pixels: np.ndarray) -> dict:
    """The page's model on pixels decoded elsewhere (Pillow): the runtime's arithmetic alone."""
    h, w, _ = pixels.shape
    b64 = base64.b64encode(np.ascontiguousarray(pixels, np.uint8).tobytes()).decode()
    return page.evaluate(
        """async a => { const s = atob(a.b64); const rgb = new Uint8Array(s.length);
        for (let i = 0; i < s.length; i++) rgb[i] = s.charCodeAt(i);
        return window.bincls.classifyPixels({rgb: rgb, width: a.w, height: a.h}); }""",
        {"b64": b64, "w": w, "h": h},
    )
