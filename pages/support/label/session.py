"""The Label page's session: which pile and classes, the engine's LabelingSession for them (one per
server, shared by every tab: the answers live in bincls' cache folder and every call reads them afresh),
and the form that opens one."""

from __future__ import annotations

import streamlit as st

from bincls import BinclsError
from bincls.data import data_root
from bincls.paths import SAMPLE_DATA
from pages.support.shared import keys
from pages.support.shared.formatting import as_text, md
from pages.support.shared.messages import flash

ss = st.session_state


@st.cache_resource(show_spinner=False, max_entries=4)
def _session(folders: tuple[str, ...], classes: tuple[str, str], generation: int):
    from bincls.labeling import LabelingSession

    bar = st.progress(0.0, text="Checking the pile's files and computing their features…")

    def progress(done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"Features: {done:,} of {total:,} images")

    try:
        return LabelingSession.open(list(folders), classes, progress=progress)
    finally:
        bar.empty()


def current():
    """The open session, or None when no pile is chosen. Errors (a folder that is gone, two equal class
    names) come out as BinclsError for the page to show."""
    folders, classes = ss.get(keys.LABEL_PILE), ss.get(keys.LABEL_CLASSES)
    if not folders or not classes:
        return None
    return _session(tuple(folders), tuple(classes), ss.get("label_generation", 0))


def look_again() -> None:
    """The pile's folders changed (new photos, a --collect folder that grew): list them again."""
    _session.clear()
    ss["label_generation"] = ss.get("label_generation", 0) + 1
    close_batch()


def close_batch() -> None:
    ss.pop(keys.LABEL_BATCH, None)


def _open(folders: list[str], classes: list[str]) -> None:
    ss[keys.LABEL_PILE], ss[keys.LABEL_CLASSES] = folders, classes
    ss[keys.LABEL_UNDO], ss[keys.LABEL_ACCEPTED] = [], []
    close_batch()


def _open_from_form() -> None:
    text = ss.get(keys.LABEL_PILE_INPUT) or ""
    folders = [line.strip() for line in text.splitlines() if line.strip()]
    classes = [(ss.get(k) or "").strip() for k in keys.LABEL_CLASS_INPUTS]
    if not folders or not all(classes):
        flash(keys.LABEL_MESSAGE, "error", "Give the pile's folder(s) and both class names.")
        return
    try:  # inside BINCLS_DATA_ROOT when it is set, as the Data page's folders
        folders = [str(data_root.confine(f.strip("'\""))) for f in folders]
    except BinclsError as exc:
        flash(keys.LABEL_MESSAGE, "error", as_text(exc))
        return
    _open(folders, classes)


def _open_sample() -> None:
    _open([str(SAMPLE_DATA)], ["ants", "bees"])


def pile_form() -> None:
    """Choose the pile and name the classes (prefilled with the open session's)."""
    if keys.LABEL_PILE_INPUT not in ss:
        ss[keys.LABEL_PILE_INPUT] = "\n".join(ss.get(keys.LABEL_PILE) or [])
        for key, name in zip(keys.LABEL_CLASS_INPUTS, ss.get(keys.LABEL_CLASSES) or ["", ""]):
            ss[key] = name
    with st.form("label_pile_form", border=True):
        st.text_area("Folders of unlabelled images (one per line; searched with their subfolders)",
                     key=keys.LABEL_PILE_INPUT, height=80,
                     placeholder="/home/me/photos/pile")  # fmt: skip
        a, b = st.columns(2)
        a.text_input("First class", key=keys.LABEL_CLASS_INPUTS[0], placeholder="cat")
        b.text_input("Second class", key=keys.LABEL_CLASS_INPUTS[1], placeholder="dog")
        st.form_submit_button("Open the pile", type="primary", on_click=_open_from_form)
    st.button("Or try it on the bundled sample (ants and bees, mixed)", on_click=_open_sample)


def describe(session) -> str:
    folders = ", ".join(md(f) for f in session.pile.folders)
    a, b = (md(c) for c in session.classes)
    return f"**{a}** or **{b}**, in {folders}"
