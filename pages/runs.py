"""Runs page: every training run in one table that tells them apart; compare runs' curves, rename one,
download its model, open it in Train, or delete some."""

from __future__ import annotations

import streamlit as st

from bincls import BinclsError
from bincls.paths import runs_dir
from bincls.runs.summary import summarize
from bincls.training.config import config_problem
from pages.support.runs import table
from pages.support.shared import keys, loaders, run_pieces, trust_views
from pages.support.shared.formatting import as_text, md
from pages.support.shared.messages import engine_words, flash, show_flashed
from pages.support.shared.state import require_app, run_by_id

require_app(__file__)

ss = st.session_state


def keep_selection(ids: list[str]) -> None:
    """Rows are selected by position: when runs come or go, move the selection with its runs."""
    old_ids, state = ss.get(keys.RUNS_TABLE_IDS), ss.get(keys.RUNS_TABLE)
    if not old_ids or old_ids == ids or not state:
        return
    rows = (state.get("selection") or {}).get("rows") or []
    picked = [old_ids[i] for i in rows if i < len(old_ids)]
    ss[keys.RUNS_TABLE] = {"selection": {"rows": [ids.index(r) for r in picked if r in ids], "columns": []}}


def delete_runs(ids: list[str]) -> None:
    """Button callback: runs before the page is drawn, so the table already shows the result."""
    for rid in ids:
        if (run := run_by_id(rid)) is None:
            continue
        try:
            run.delete(runs_dir())
        except BinclsError as exc:
            flash(keys.RUNS_MESSAGE, "error", engine_words(exc))
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
folders = {r.id: r for r in all_runs}
ids = [s.id for s in summaries]
keep_selection(ids)
st.caption(f"{len(all_runs)} run{'s' if len(all_runs) > 1 else ''} in {runs_dir()}, newest first. "
           "Tick rows to compare their curves, rename one, download its model, open it in Train, or delete.")
event = st.dataframe(table.table(summaries), key=keys.RUNS_TABLE, on_select="rerun",
                     selection_mode="multi-row", hide_index=True, placeholder="–",
                     column_config=table.COLUMNS)  # fmt: skip
ss[keys.RUNS_TABLE_IDS] = ids
for r in all_runs:
    if (problem := config_problem(r.path)) is not None:
        st.warning(f"Run {r.id}: {as_text(problem)}", icon=":material/warning:")
if nothing := sum(1 for s in summaries if s.learned_nothing):
    st.caption(f"⚠ {nothing} run{'s' if nothing > 1 else ''} learned nothing (validation no better than "
               "guessing): tick one to see the likely cause.")  # fmt: skip
selected = [summaries[i] for i in event.selection.rows if i < len(summaries)]

one = len(selected) == 1
c1, c2, c3, _ = st.columns([1, 1, 1, 2])
if c1.button("Open in Train", icon=":material/model_training:", disabled=not one, width="stretch",
             help="Show this run's curves and results on the Train page"):
    ss[keys.CURRENT_RUN] = selected[0].id
    st.switch_page("pages/train.py")
if c2.button("Rename…", icon=":material/edit:", disabled=not one, width="stretch",
             help="Give the run a name that says what it tried"):
    ss[keys.RUNS_NEW_NAME] = selected[0].name or ""
    table.rename_dialog(selected[0], folders[selected[0].id])
if c3.button("Delete…", icon=":material/delete:", disabled=not selected, width="stretch",
             help="Asks first; a running run must be stopped before it can be deleted"):
    confirm_delete([s.id for s in selected])

if one:
    s = selected[0]
    st.subheader(f"{md(s.title)} · {s.id}", anchor=False)
    run_pieces.learned_nothing_warning(s)
    run_pieces.model_download(folders[s.id], key=f"runs_download_{s.id}")
if selected:
    table.compare(selected, folders)
    trust_views.paired_test([folders[s.id] for s in selected])  # when two are ticked
else:
    st.caption("Select runs in the table (the boxes at the left of the rows) to compare their validation "
               "curves, for example the same model trained with different optimizers.")
