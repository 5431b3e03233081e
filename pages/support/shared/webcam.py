"""Take photos with the webcam into a class folder of bincls' uploads: one click, one new file, a running
count, and an undo of the last photo taken here (the Data page per class; the Label page may call it)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from bincls import BinclsError
from bincls.data.captures import captures_in, save_capture, undo_capture
from pages.support.shared import keys
from pages.support.shared.messages import engine_words

ss = st.session_state


def _state(key: str) -> dict:
    return ss.setdefault(keys.WEBCAM + key, {"gen": 0, "saved": [], "error": None})


def _camera_key(key: str) -> str:
    return f"{keys.WEBCAM_CAMERA}{key}-{_state(key)['gen']}"


def _save(folder: Path, key: str, camera: str) -> None:
    """The camera took a photo: save it, then give a fresh camera (a new widget generation), so the next
    photo is one click, not "Clear photo" and then "Take photo"."""
    photo = ss.get(camera)
    if photo is None:  # "Clear photo"
        return
    state = _state(key)
    try:
        state["saved"].append(save_capture(folder, photo.getvalue()))
        state["error"] = None
    except BinclsError as exc:
        state["error"] = engine_words(exc)
    state["gen"] += 1


def _undo(key: str) -> None:
    state = _state(key)
    if state["saved"] and not undo_capture(state["saved"].pop()):
        state["error"] = "That photo was changed or removed since; nothing was deleted."


def forget(key: str) -> None:
    """Forget the photos `key` took (they were moved or used): undo can no longer reach them."""
    ss.pop(keys.WEBCAM + key, None)


def webcam_capture(folder: Path, key: str, label: str = "Take a photo") -> None:
    """A camera whose every photo is saved at once as a new file in `folder` (a class folder inside bincls'
    uploads folder, made on the first photo), with how many photos the folder holds, the last one small,
    and "Undo last photo", which deletes only a photo this camera saved. `key` names this camera."""
    state = _state(key)
    camera = _camera_key(key)
    st.camera_input(label, key=camera, on_change=_save, args=(Path(folder), key, camera))
    photos = captures_in(folder)
    with st.container(horizontal=True, vertical_alignment="center"):
        if photos:
            st.image(str(photos[-1]), width=56)
        n = len(photos)
        st.markdown(f"**{n}** webcam photo{'s' * (n != 1)}", width="content",
                    help="Each photo is saved at once as a new file in bincls' uploads folder.")  # fmt: skip
        st.button("Undo last photo", key=f"{keys.WEBCAM_CAMERA}{key}-undo", on_click=_undo, args=(key,),
                  icon=":material/undo:", disabled=not state["saved"],
                  help="Deletes the last photo this camera saved (and nothing else).")  # fmt: skip
    if state["error"]:
        st.error(state["error"], icon=":material/error:")
