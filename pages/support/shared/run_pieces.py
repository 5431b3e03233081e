"""Pieces about one run that the Train and Runs pages (and Evaluate) both show: the warning for a run that
learned nothing, and getting the model out (the checkpoint to download, with the Python to use it)."""

from __future__ import annotations

import streamlit as st

from bincls.runs.folder import RunFolder
from bincls.runs.summary import RunSummary
from pages.support.shared.messages import engine_words


def learned_nothing_warning(s: RunSummary) -> bool:
    """The warning for a run whose validation results are those of guessing; True when shown."""
    if not s.learned_nothing:
        return False
    st.warning(engine_words(s.learned_nothing), icon=":material/sentiment_dissatisfied:")
    return True


def usage_snippet(run: RunFolder, file_name: str) -> str:
    """Python that loads the downloaded checkpoint and predicts one image, as the app would."""
    saved = run.config().get("threshold")
    threshold = f", threshold={float(saved):.2f}" if saved is not None else ""
    return (
        "from bincls import Predictor  # pip install this project (README: Quick start)\n\n"
        f'model = Predictor("{file_name}"{threshold})\n'
        'p = model.predict("photo.jpg")\n'
        "print(p.class_name, p.probability)  # the class and how sure the model is\n"
    )


def model_download(run: RunFolder, key: str) -> None:
    """A "Download model" button for the run's checkpoint (best.pt, else last.pt) and how to use it."""
    ckpt = run.best_checkpoint if run.best_checkpoint.is_file() else run.last_checkpoint
    if not ckpt.is_file():
        st.caption("No checkpoint to download yet: the run has not finished an epoch.")
        return
    name = f"{run.id}-{ckpt.name}"
    size = ckpt.stat().st_size / 2**20
    c1, c2 = st.columns([1, 2], vertical_alignment="center")
    c1.download_button(f"Download model ({size:.1f} MB)", data=ckpt.read_bytes, file_name=name,
                       mime="application/octet-stream", icon=":material/download:", on_click="ignore",
                       key=key, width="stretch",
                       help=f"The checkpoint {ckpt.name}: weights, class names, preprocessing and "
                       "calibration in one file that loads without the app.")  # fmt: skip
    with c2.popover("Use it from Python", icon=":material/code:"):
        st.code(usage_snippet(run, name), language="python")
        st.caption("Also from a terminal: `python -m bincls predict " + name + " photo.jpg`. "
                   "The checkpoint loads with torch.load(..., weights_only=True).")
