"""One way to show a message: now, once after the next rerun (`flash`), or as the page's last word
(`stop_on_error`: an engine error becomes a message, never a traceback, and the page ends there)."""

from __future__ import annotations

from contextlib import contextmanager

import streamlit as st

from bincls import BinclsError

ICONS = {
    "error": ":material/error:",
    "warning": ":material/warning:",
    "success": ":material/check_circle:",
    "info": ":material/info:",
}
_SHOW = {"error": st.error, "warning": st.warning, "success": st.success, "info": st.info}


def show(kind: str, text: str, icon: str | None = None) -> None:
    """`text` as an error, warning, success or info box, with the kind's icon unless one is given."""
    _SHOW[kind](text, icon=icon or ICONS[kind])


def show_error(exc: BaseException | str) -> None:
    """Engine errors are shown as messages, never as tracebacks."""
    show("error", str(exc))


def flash(key: str, kind: str, text: str) -> None:
    """Keep a message under `key` until `show_flashed(key)` shows it (once): what a callback or an
    action followed by st.rerun() says about itself."""
    st.session_state[key] = [*(st.session_state.get(key) or []), (kind, text)]


def show_flashed(key: str) -> None:
    for kind, text in st.session_state.pop(key, None) or []:
        show(kind, text)


@contextmanager
def stop_on_error(hint: str | None = None):
    """Run a block; on a `BinclsError` show it (and `hint` as an info line) and end the page there."""
    try:
        yield
    except BinclsError as exc:
        show_error(exc)
        if hint:
            show("info", hint, icon=":material/folder_open:")
        st.stop()
