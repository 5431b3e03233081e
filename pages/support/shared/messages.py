"""One way to show a message: now, once after the next rerun (`flash`), or as the page's last word
(`stop_on_error`: an engine error becomes a message, never a traceback, and the page ends there)."""

from __future__ import annotations

import re
from contextlib import contextmanager

import streamlit as st

from bincls import BinclsError
from pages.support.shared.formatting import as_text

ICONS = {
    "error": ":material/error:",
    "warning": ":material/warning:",
    "success": ":material/check_circle:",
    "info": ":material/info:",
}
_SHOW = {"error": st.error, "warning": st.warning, "success": st.success, "info": st.info}
# The engine's messages serve the command line too, and name its flags; on a page they name its settings.
PAGE_NAMES = {
    "--weights FILE": "Weights: Local file (under All settings)",
    "--weights none": "Weights: None (random init)",
    "--weights": "Weights",
    "--model": "Model",
    "--img-size": "Image size",
    "--time-budget": "Time budget",
    "--epochs": "Epochs",
    "--lr": "Learning rate",
    "--batch-size": "Batch size",
    "--preset": "Recipe",
    "--freeze-backbone": "Training: Freeze backbone",
    "--memory-budget": "Memory budget",
    "--device": "Device",
}
_FLAG = re.compile(r"`?(--[a-z][a-z-]*)(?: (FILE|none|/[^\s`]+))?`?(?=[\s.,;:)]|$)")
_APP_NOTE = re.compile(r" ?\(the app: [^)]*\)")
_PRESETS = re.compile(r"\b([Uu]se )?preset scratch\b")


def page_words(text: str) -> str:
    """An engine message as the pages say it: the page's setting where the command line's flag was."""

    def name(m: re.Match) -> str:
        flag, arg = m.group(1), m.group(2)
        arg = "FILE" if arg and arg.startswith("/") else arg
        return PAGE_NAMES.get(f"{flag} {arg}") or PAGE_NAMES.get(flag, m.group(0))

    def recipe(m: re.Match) -> str:
        verb = {"Use ": "Choose ", "use ": "choose "}.get(m.group(1) or "", "")
        return f"{verb}the From scratch recipe"

    return _FLAG.sub(name, _PRESETS.sub(recipe, _APP_NOTE.sub("", text)))


def show(kind: str, text: str, icon: str | None = None) -> None:
    """`text` as an error, warning, success or info box, with the kind's icon unless one is given."""
    _SHOW[kind](text, icon=icon or ICONS[kind])


def show_error(exc: BaseException | str) -> None:
    """Engine errors are shown as messages (in the pages' words, the names in them as plain text), never as
    tracebacks."""
    show("error", engine_words(exc))


def engine_words(exc: BaseException | str) -> str:
    """An engine message as markdown for a page: its flags as the page's settings, the user's file and folder
    names in it as plain text (`formatting.as_text`)."""
    return as_text(page_words(str(exc)))


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
