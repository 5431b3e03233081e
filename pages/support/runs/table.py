"""The Runs page's pieces: the table that tells runs apart, the legend names of compared runs, the
comparison charts and the rename dialog."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from bincls import BinclsError
from bincls.runs.folder import RunFolder
from bincls.runs.names import set_run_name
from bincls.runs.summary import RunSummary, epoch_records
from pages.support.shared import charts, keys
from pages.support.shared.formatting import STATE_MARKS, chart_text, duration, md, when
from pages.support.shared.messages import engine_words, flash

ss = st.session_state
COLUMNS = {
    "Name": st.column_config.TextColumn(
        width="medium", help="Rename a run: tick it, then Rename…. Unnamed: model · recipe · date"),
    "LR": st.column_config.NumberColumn(format="%g"),
    "Best val acc": st.column_config.NumberColumn(format="percent", help="Of the best epoch, on validation"),
    "Test acc": st.column_config.NumberColumn(
        format="percent", help="On the run's test split, once the Evaluate page (or bincls evaluate) ran it"),
    "Image size": st.column_config.NumberColumn(format="%d px"),
    "Run": st.column_config.TextColumn(width="medium"),
}  # fmt: skip


def backbone(s: RunSummary) -> str:
    return "" if s.frozen is None else ("frozen" if s.frozen else "fine-tuned")


def state_mark(s: RunSummary) -> str:
    mark = STATE_MARKS.get(s.state, s.state)
    return f"⚠ {s.state}, learned nothing" if s.learned_nothing else mark


def run_row(s: RunSummary) -> dict:
    # How it went first, then what it tried: the table is wider than the page, and the outcome must be in
    # view without scrolling sideways.
    return {
        "Name": s.title,  # a table cell is plain text: no escaping
        "State": state_mark(s),
        "Best val acc": s.best_val_accuracy,
        "Test acc": s.test_accuracy,
        "Model": s.model,
        "Weights": s.weights_label,
        "Backbone": backbone(s),
        "Preset": s.preset or "",
        "Augment": {True: "on", False: "off"}.get(s.augment, ""),
        "Image size": s.img_size,
        "Duration": duration(s.duration_s) if s.duration_s is not None else "",
        "Epochs": f"{s.epochs_done}/{s.epochs_asked or '?'}",
        "Optimizer": s.optimizer,
        "LR": s.lr,
        "Date": when(s.created),
        "Data": " + ".join(Path(p).name for p in s.data),
        "Run": s.id,
    }


def table(summaries: list[RunSummary]) -> pd.DataFrame:
    frame = pd.DataFrame([run_row(s) for s in summaries])
    for column in ("LR", "Best val acc", "Test acc", "Image size"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")  # None -> NaN: an empty cell
    return frame


LEGEND_FACETS = 3  # more makes a legend entry longer than the chart is wide
# What differs between runs, in the order a person would name it.
_FACETS = (
    ("model", lambda s: s.model), ("weights", lambda s: s.weights_label), ("backbone", backbone),
    ("preset", lambda s: f"{s.preset} recipe" if s.preset else ""), ("optimizer", lambda s: s.optimizer),
    ("lr", lambda s: f"lr {s.lr:g}" if s.lr else ""),
    ("size", lambda s: f"{s.img_size} px" if s.img_size else ""),
    ("augment", lambda s: {True: "augmented", False: "no augmentation"}.get(s.augment, "")),
    ("data", lambda s: " + ".join(Path(p).name for p in s.data)),
)  # fmt: skip


def legend_names(selected: list[RunSummary]) -> list[str]:
    """One distinct name per run: its own name, else the (first three) settings in which the compared runs
    differ (the model when none do), each with the end of its id, so two lines never share a name."""
    varying = [get for _, get in _FACETS if len({get(s) for s in selected}) > 1][:LEGEND_FACETS]
    names = []
    for s in selected:
        label = s.name or " · ".join(v for get in varying if (v := get(s))) or s.model or "?"
        names.append(chart_text(f"{label} ({s.id.rsplit('-', 1)[-1]})"))
    return names


def compare(selected: list[RunSummary], folders: dict[str, RunFolder]) -> None:
    """The validation curves of the selected runs: one colour (and, past the palette, dash) per run, in both
    charts, named by what tells them apart."""
    curves = [(name, epoch_records(folders[s.id].read_metrics()))
              for name, s in zip(legend_names(selected), selected)]  # fmt: skip
    loss, acc = charts.run_comparison(curves)
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss)
    c2.plotly_chart(acc)
    if empty := [s.id for s, (_, epochs) in zip(selected, curves) if not epochs]:
        st.caption(f"No finished epoch yet, so no curve: {', '.join(empty)}.")


def rename(run_id: str, folder: RunFolder) -> None:
    """Callback of the rename dialog's Save: runs before the page is drawn, so the table shows the name."""
    try:
        name = set_run_name(folder, ss.get(keys.RUNS_NEW_NAME) or "")
        flash(keys.RUNS_MESSAGE, "success", f"Run {run_id} is now called “{md(name)}”." if name
              else f"Run {run_id} has no name now.")  # fmt: skip
    except BinclsError as exc:
        flash(keys.RUNS_MESSAGE, "error", engine_words(exc))


@st.dialog("Rename the run")
def rename_dialog(s: RunSummary, folder: RunFolder) -> None:
    st.caption(f"Run `{s.id}` ({s.model}, {when(s.created)}). The name is kept in the run folder "
               "(name.txt); an empty name goes back to the one it started with.")  # fmt: skip
    st.text_input("Name", key=keys.RUNS_NEW_NAME, max_chars=200, placeholder="e.g. frozen mobilenet, 224 px")
    c1, c2 = st.columns(2)
    if c1.button("Save", type="primary", icon=":material/save:", on_click=rename, args=(s.id, folder),
                 width="stretch"):  # fmt: skip
        st.rerun()
    if c2.button("Cancel", width="stretch"):
        st.rerun()
