"""Runs page: every training run in one table; compare runs' curves, open one, or delete some."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from bincls import BinclsError
from bincls.paths import runs_dir
from bincls.training.config import DEFAULT_LR
from bincls.training.run_folder import RunFolder
from pages import common

common.require_app(__file__)

ss = st.session_state
# Distinct colours, one per compared run and the same in both charts.
COLORS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777", "#4b5563")


def run_row(run: RunFolder) -> dict:
    status, cfg = run.status(), run.config()
    state = status.get("state", "unknown")
    done = status.get("epochs_done")
    if done is None:  # still running, or interrupted: the epochs finished so far
        done = (status.get("last_epoch_metrics") or {}).get("epoch", 0)
    optimizer = cfg.get("optimizer", "")
    return {
        "Date": common.fmt_time(status.get("created") or status.get("started")),
        "Data": " + ".join(Path(p).name for p in cfg.get("data", [])),
        "Model": cfg.get("model") or status.get("model", ""),
        "Optimizer": optimizer,
        "LR": cfg.get("lr") or DEFAULT_LR.get(optimizer),
        "Epochs": f"{done}/{cfg.get('epochs', status.get('epochs', '?'))}",
        "Best val acc": status.get("best_val_accuracy"),
        "State": common.STATE_MARKS.get(state, state),
        "Run": run.id,
    }


def curve_name(run: RunFolder) -> str:
    cfg = run.config()
    return f"{cfg.get('model', '?')}/{cfg.get('optimizer', '?')}/{run.id.rsplit('-', 1)[-1]}"


def keep_selection(ids: list[str]) -> None:
    """Rows are selected by position: when runs come or go, move the selection with its runs."""
    old_ids, state = ss.get(common.RUNS_TABLE_IDS), ss.get(common.RUNS_TABLE)
    if not old_ids or old_ids == ids or not state:
        return
    rows = (state.get("selection") or {}).get("rows") or []
    picked = [old_ids[i] for i in rows if i < len(old_ids)]
    ss[common.RUNS_TABLE] = {"selection": {"rows": [ids.index(r) for r in picked if r in ids], "columns": []}}


def compare(selected: list[RunFolder]) -> None:
    loss, acc = go.Figure(), go.Figure()
    empty = []
    for i, run in enumerate(selected):
        epochs = [r for r in run.read_metrics() if r.get("kind") == "epoch"]
        if not epochs:
            empty.append(run.id)
        x = [r["epoch"] for r in epochs]
        style = {"mode": "lines+markers", "name": curve_name(run), "line": {"color": COLORS[i % len(COLORS)]}}
        loss.add_scatter(x=x, y=[r.get("val_loss") for r in epochs], **style)
        acc.add_scatter(x=x, y=[r.get("val_accuracy") for r in epochs], **style)
    titles = {"Validation loss": "val loss (BCE)", "Validation accuracy": "val accuracy"}
    for fig, (title, y_title) in zip((loss, acc), titles.items()):
        fig.update_layout(
            title={"text": title}, height=380, margin={"l": 10, "r": 10, "t": 70, "b": 10}, showlegend=True,
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0},
        )  # fmt: skip
        fig.update_xaxes(title_text="epoch", rangemode="tozero")
        fig.update_yaxes(title_text=y_title)
    acc.update_yaxes(range=[0, 1.02], tickformat=".0%")
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss)
    c2.plotly_chart(acc)
    if empty:
        st.caption(f"No finished epoch yet, so no curve: {', '.join(empty)}.")


def delete_runs(ids: list[str]) -> None:
    """Button callback: runs before the page is drawn, so the table already shows the result."""
    errors = []
    for rid in ids:
        run = common.run_by_id(rid)
        if run is None:
            continue
        try:
            run.delete(runs_dir())
        except BinclsError as exc:
            errors.append(exc)
    ss[common.RUNS_DELETE_ERRORS] = errors
    if ss.get(common.CURRENT_RUN) in ids and common.run_by_id(ss[common.CURRENT_RUN]) is None:
        ss[common.CURRENT_RUN] = None


@st.dialog("Delete runs?")
def confirm_delete(ids: list[str]) -> None:
    st.markdown(f"This removes {len(ids)} run folder{'s' if len(ids) > 1 else ''} for good, with the "
                "checkpoints, metrics and logs inside:")
    st.markdown("\n".join(f"- `{rid}`" for rid in ids))
    c1, c2 = st.columns(2)
    if c1.button("Yes, delete", type="primary", icon=":material/delete:", on_click=delete_runs, args=(ids,),
                 width="stretch"):
        st.rerun()  # closes the dialog
    if c2.button("Cancel", width="stretch"):
        st.rerun()


# Page -----------------------------------------------------------------------------------------------
st.title("Runs")
for exc in ss.pop(common.RUNS_DELETE_ERRORS, None) or []:
    common.show_error(exc)
all_runs = common.runs()
if not all_runs:
    st.info(f"No runs yet in {runs_dir()}: start one on the Train page.", icon=":material/history:")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

ids = [r.id for r in all_runs]
keep_selection(ids)
st.caption(f"{len(all_runs)} run{'s' if len(all_runs) > 1 else ''} in {runs_dir()}, newest first. "
           "Tick rows to compare their curves, open one in Train, or delete.")
table = pd.DataFrame([run_row(r) for r in all_runs])
for column in ("LR", "Best val acc"):
    table[column] = pd.to_numeric(table[column], errors="coerce")  # None -> NaN: an empty cell
event = st.dataframe(
    table,
    key=common.RUNS_TABLE,
    on_select="rerun",
    selection_mode="multi-row",
    hide_index=True,
    placeholder="–",
    column_config={
        "LR": st.column_config.NumberColumn(format="%g"),
        "Best val acc": st.column_config.NumberColumn(format="percent"),
        "Run": st.column_config.TextColumn(width="medium"),
    },
)
ss[common.RUNS_TABLE_IDS] = ids
for r in all_runs:
    if (problem := common.config_problem(r)) is not None:
        st.warning(f"Run {r.id}: {problem}", icon=":material/warning:")
selected = [all_runs[i] for i in event.selection.rows if i < len(all_runs)]

c1, c2, _ = st.columns([1, 1, 3])
if c1.button("Open in Train", icon=":material/model_training:", disabled=len(selected) != 1, width="stretch",
             help="Show this run's curves and results on the Train page"):
    ss[common.CURRENT_RUN] = selected[0].id
    st.switch_page("pages/train.py")
if c2.button("Delete…", icon=":material/delete:", disabled=not selected, width="stretch",
             help="Asks first; a running run must be stopped before it can be deleted"):
    confirm_delete([r.id for r in selected])

if selected:
    compare(selected)
else:
    st.caption("Select runs in the table (the boxes at the left of the rows) to compare their validation "
               "curves, for example the same model trained with different optimizers.")
