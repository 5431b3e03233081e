"""Open the app's pages with Streamlit's AppTest the way a user arrives: through app.py."""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def open_page(name: str, timeout: float = 90, state: dict | None = None) -> AppTest:
    """Run app.py (with session `state` set first), switch to pages/<name>.py, and check that nothing
    raised."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    at.switch_page(f"pages/{name}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def data_page(**state) -> AppTest:
    """The app as it starts (the Data page is the default), with optional session state set first."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(markdown: str) -> str:
    """Markdown as the page shows it, as far as names go: the backslash escapes that keep a user's names
    from being markdown (`pages.support.shared.formatting.md`) read as the characters themselves."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")


def button(at: AppTest, label: str):
    """The button with this label (the first, if several)."""
    return next(b for b in at.button if b.label == label)
