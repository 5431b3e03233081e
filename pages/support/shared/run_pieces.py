"""Pieces about one run that the Train and Runs pages (and Evaluate) both show: the warning for a run that
learned nothing, and getting the model out (the checkpoint to download, with the Python to use it)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from bincls.runs.folder import RunFolder
from bincls.runs.summary import RunSummary
from pages.support.shared.commands import example_image, python_snippet, short_path, show_command
from pages.support.shared.messages import engine_words


def learned_nothing_warning(s: RunSummary) -> bool:
    """The warning for a run whose validation results are those of guessing; True when shown."""
    if not s.learned_nothing:
        return False
    st.warning(engine_words(s.learned_nothing), icon=":material/sentiment_dissatisfied:")
    return True


def usage_snippet(run: RunFolder, ckpt: Path, file_name: str) -> str:
    """Python that loads the run's checkpoint and predicts one of its images, as the app would: it runs as
    shown (`commands.python_snippet`); elsewhere, the downloaded file takes the checkpoint's place."""
    saved = run.config().get("threshold")
    threshold = f", threshold={float(saved):.2f}" if saved is not None else ""
    image = example_image(run) or "photo.jpg"
    return (
        "from bincls import Predictor  # elsewhere: pip install this project (README: Quick start)\n\n"
        f"model = Predictor({short_path(str(ckpt))!r}{threshold})  # or the downloaded {file_name}\n"
        f"p = model.predict({image!r})\n"
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
        snippet = usage_snippet(run, ckpt, name)
        st.code(snippet, language="python")
        st.caption("Run it from the project folder with the Python that runs this app:")
        st.code(python_snippet(snippet), language="bash")
        st.caption("Or from a terminal:")
        show_command(["python", "-m", "bincls", "predict", str(ckpt), example_image(run) or "photo.jpg"])
        st.caption("The checkpoint loads with torch.load(..., weights_only=True).")
