"""No pretrained weights here (offline, empty torch cache): where torchvision's file goes, by folder and file
name, and a way to give a weights file whatever its name, as a path or an upload. The Data page's label
audit and the Train page both need it.

The file is checked (`bincls.models.weights.import_weights`: every layer's name and shape must be the
architecture's) and copied into bincls' own cache, where the ImageNet lookup finds it; the user's file is
only read.
"""

from __future__ import annotations

import os
import tempfile

import streamlit as st

from bincls import BinclsError
from bincls.data import data_root
from bincls.models.weights import (
    BACKBONES,
    hub_checkpoints,
    import_weights,
    own_weights_file,
    torchvision_file,
)
from pages.support.shared import keys
from pages.support.shared.formatting import code, md
from pages.support.shared.messages import engine_words, flash, show_flashed


def where_weights_go(model: str = BACKBONES[0]) -> str:
    """The folder and the file name torchvision looks for, in a sentence of markdown."""
    file, url = torchvision_file(model)
    return (f"Put torchvision's file {code(file)} in the folder {code(hub_checkpoints())} (download it from "
            f"{url} on a machine with internet), or give a file of {model} weights below, whatever its name.")


def weights_offer(key: str, model: str = BACKBONES[0], folded: bool = False) -> None:
    """Where the ImageNet weights go, and a form that takes a weights file (a path or an upload), `folded`
    in an expander under the sentence; `key` keeps two offers on one page apart. `weights_news` says what
    the form did, after the rerun it asks."""
    st.markdown(where_weights_go(model))
    where = st.expander("Use a weights file", icon=":material/upload_file:") if folded else st.container()
    with where, st.form(f"{key}_weights_form", border=True):
        left, right = st.columns(2, gap="medium")
        left.text_input("A weights file on this computer", key=keys.WEIGHTS_PATH + key,
                        placeholder=f"/path/to/{model}_weights.pth")
        right.file_uploader("Or upload it", type=None, key=keys.WEIGHTS_UPLOAD + key,
                            help="A state_dict saved with torch.save(model.state_dict(), path), any name")
        own = code(own_weights_file(model).parent)
        st.caption(f"It is checked (every layer's name and shape must be those of {model} or another "
                   f"backbone: {', '.join(BACKBONES)}) and copied into {own}; your file is only read.")
        if st.form_submit_button("Use this weights file", icon=":material/upload_file:", type="primary"):
            _take(key)
            st.rerun()  # the pages' "weights at hand" are keyed by the folders' stamps: they see it now


def weights_news() -> None:
    """What the last weights file given did (taken, or why not), once; where the offer was, which may be
    gone now that weights are at hand."""
    show_flashed(keys.WEIGHTS_MESSAGE)


def _take(key: str) -> None:
    path = (st.session_state.get(keys.WEIGHTS_PATH + key) or "").strip().strip("'\"")
    upload = st.session_state.get(keys.WEIGHTS_UPLOAD + key)
    try:
        if upload is not None:
            name, copy = _import_upload(upload.getvalue(), upload.name)
            what = md(upload.name)
        elif path:
            name, copy = import_weights(data_root.confine(path))
            what = code(path)
        else:
            flash(keys.WEIGHTS_MESSAGE, "error", "Give the path of a weights file, or upload one.")
            return
    except BinclsError as exc:
        flash(keys.WEIGHTS_MESSAGE, "error", engine_words(exc))
        return
    flash(keys.WEIGHTS_MESSAGE, "success", f"{what} holds {name} weights (every layer's name and shape "
          f"checked). They are now the ImageNet weights here, kept in {code(copy)}.")  # fmt: skip


def _import_upload(data: bytes, name: str) -> tuple[str, object]:
    """An uploaded file, written to bincls' cache for the check, then taken as `import_weights` takes one."""
    folder = own_weights_file(BACKBONES[0]).parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".pth")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return import_weights(tmp)
    except BinclsError as exc:
        raise BinclsError(str(exc).replace(tmp, f"The uploaded file {name}")) from None
    finally:
        os.unlink(tmp)
