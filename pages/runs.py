"""Runs page: every training run in one table; compare runs' curves, open one, or delete some."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from bincls import BinclsError
from bincls.paths import runs_dir
from bincls.training.run_folder import RunFolder
from bincls.training.run_summary import RunSummary, config_problem, epoch_records, summarize
from pages.support import charts, keys, loaders, trust_views
from pages.support.formatting import STATE_MARKS, when
from pages.support.messages import flash, show_flashed
from pages.support.state import require_app, run_by_id

require_app(__file__)

ss = st.session_state


def run_row(s: RunSummary) -> dict:
    return {
        "Date": when(s.created),
        "Data": " + ".join(Path(p).name for p in s.data),
        "Model": s.model,
        "Optimizer": s.optimizer,
        "LR": s.lr,
        "Epochs": f"{s.epochs_done}/{s.epochs_asked or '?'}",
        "Best val acc": s.best_val_accuracy,
        "State": STATE_MARKS.get(s.state, s.state),
        "Run": s.id,
    }


def keep_selection(ids: list[str]) -> None:
    """Rows are selected by position: when runs come or go, move the selection with its runs."""
    old_ids, state = ss.get(keys.RUNS_TABLE_IDS), ss.get(keys.RUNS_TABLE)
    if not old_ids or old_ids == ids or not state:
        return
    rows = (state.get("selection") or {}).get("rows") or []
    picked = [old_ids[i] for i in rows if i < len(old_ids)]
    ss[keys.RUNS_TABLE] = {"selection": {"rows": [ids.index(r) for r in picked if r in ids], "columns": []}}


def compare(selected: list[RunSummary], folders: dict[str, RunFolder]) -> None:
    """The validation curves of the selected runs, one colour per run in both charts."""
    curves = [(f"{s.model or '?'}/{s.optimizer or '?'}/{s.id.rsplit('-', 1)[-1]}",
               epoch_records(folders[s.id].read_metrics())) for s in selected]  # fmt: skip
    loss, acc = charts.run_comparison(curves)
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss)
    c2.plotly_chart(acc)
    if empty := [s.id for s, (_, epochs) in zip(selected, curves) if not epochs]:
        st.caption(f"No finished epoch yet, so no curve: {', '.join(empty)}.")


def delete_runs(ids: list[str]) -> None:
    """Button callback: runs before the page is drawn, so the table already shows the result."""
    for rid in ids:
        if (run := run_by_id(rid)) is None:
            continue
        try:
            run.delete(runs_dir())
        except BinclsError as exc:
            flash(keys.RUNS_MESSAGE, "error", str(exc))
    if ss.get(keys.CURRENT_RUN) in ids and run_by_id(ss[keys.CURRENT_RUN]) is None:
        ss[keys.CURRENT_RUN] = None


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


st.title("Runs")
show_flashed(keys.RUNS_MESSAGE)
all_runs = loaders.runs()
if not all_runs:
    st.info(f"No runs yet in {runs_dir()}: start one on the Train page.", icon=":material/history:")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

summaries = [summarize(r) for r in all_runs]
ids = [s.id for s in summaries]
keep_selection(ids)
st.caption(f"{len(all_runs)} run{'s' if len(all_runs) > 1 else ''} in {runs_dir()}, newest first. "
           "Tick rows to compare their curves, open one in Train, or delete.")
table = pd.DataFrame([run_row(s) for s in summaries])
for column in ("LR", "Best val acc"):
    table[column] = pd.to_numeric(table[column], errors="coerce")  # None -> NaN: an empty cell
event = st.dataframe(
    table, key=keys.RUNS_TABLE, on_select="rerun", selection_mode="multi-row", hide_index=True,
    placeholder="–",
    column_config={
        "LR": st.column_config.NumberColumn(format="%g"),
        "Best val acc": st.column_config.NumberColumn(format="percent"),
        "Run": st.column_config.TextColumn(width="medium"),
    },
)  # fmt: skip
ss[keys.RUNS_TABLE_IDS] = ids
for r in all_runs:
    if (problem := config_problem(r)) is not None:
        st.warning(f"Run {r.id}: {problem}", icon=":material/warning:")
selected = [summaries[i] for i in event.selection.rows if i < len(summaries)]

c1, c2, _ = st.columns([1, 1, 3])
if c1.button("Open in Train", icon=":material/model_training:", disabled=len(selected) != 1, width="stretch",
             help="Show this run's curves and results on the Train page"):
    ss[keys.CURRENT_RUN] = selected[0].id
    st.switch_page("pages/train.py")
if c2.button("Delete…", icon=":material/delete:", disabled=not selected, width="stretch",
             help="Asks first; a running run must be stopped before it can be deleted"):
    confirm_delete([s.id for s in selected])

if selected:
    compare(selected, {r.id: r for r in all_runs})
    trust_views.paired_test([r for s in selected for r in all_runs if r.id == s.id])  # when two are ticked
else:
    st.caption("Select runs in the table (the boxes at the left of the rows) to compare their validation "
               "curves, for example the same model trained with different optimizers.")
