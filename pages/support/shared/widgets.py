"""Widgets more than one page uses: the paged table, the image gallery, the run picker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import streamlit as st
from PIL import ImageOps

from bincls.runs.folder import RunFolder
from bincls.runs.summary import summarize
from pages.support.shared import keys, loaders
from pages.support.shared.charts import pad_colour
from pages.support.shared.formatting import md, run_label

# A browser cannot take a 100,000-row table: long tables show a page at a time, with a CSV of them all.
TABLE_ROWS = 200
GALLERY_COLUMNS = 6  # cards in a row on a wide screen (they wrap: two on a phone)
GALLERY_SIDE = 256
GALLERY_CARD = 150  # px


def paged_table(items: Sequence, row: Callable, columns: list[str], key: str, file_name: str) -> None:
    """`items` as a table, TABLE_ROWS at a time; `row(item)` is only called for the rows shown (and
    for all of them when the CSV is downloaded)."""
    n = len(items)
    pages = max(1, -(-n // TABLE_ROWS))
    page = 1
    if pages > 1:
        if st.session_state.get(key, 1) > pages:  # the data changed under a later page: above max fails
            st.session_state[key] = pages
        page = st.number_input(f"Page (of {pages:,})", 1, pages, step=1, key=key, width=200)
    start = (page - 1) * TABLE_ROWS
    shown = items[start : start + TABLE_ROWS]
    st.dataframe(pd.DataFrame([row(i) for i in shown], columns=columns), hide_index=True, width="stretch",
                 height=min(38 + 35 * len(shown), 400))
    if pages > 1:
        st.caption(f"Showing rows {start + 1:,}–{start + len(shown):,} of {n:,}. The CSV has them all.")
        st.download_button(
            f"Download all {n:,} rows (CSV)", file_name=file_name, mime="text/csv", on_click="ignore",
            data=lambda: pd.DataFrame([row(i) for i in items], columns=columns).to_csv(index=False).encode(),
            icon=":material/download:", key=f"{key}-csv",
        )  # fmt: skip


def result_gallery(rows: pd.DataFrame, positive: str, actions: Callable | None = None) -> None:
    """Evaluated images (path, true, predicted, probability, loss) as square thumbnails with their verdict;
    `actions(row)`, when given, draws what can be done with an image at the foot of its card."""
    # A wrapping row of fixed-width cards, not columns: a phone would stack columns one under the other at
    # full width.
    with st.container(horizontal=True, gap="small"):
        for row in rows.itertuples(index=False):
            with st.container(width=GALLERY_CARD):
                _result_card(row, positive)
                if actions is not None:
                    actions(row)


def _result_card(row, positive: str) -> None:
    thumb = loaders.thumbnail(row.path, GALLERY_SIDE)
    if thumb is not None:  # padded to a square, so the captions of a row line up
        st.image(ImageOps.pad(thumb, (GALLERY_SIDE, GALLERY_SIDE), color=pad_colour()), width="stretch")
    mark = ":green[✔ right]" if row.true == row.predicted else ":red[✘ wrong]"
    st.markdown(f"{mark}: true **{md(row.true)}**, said **{md(row.predicted)}**  \n"
                f"P({md(positive)}) = {row.probability:.3f} · loss {row.loss:.2f}")
    path = Path(row.path)
    st.caption(md(f"{path.parent.name}/{path.name}"), help=md(path))


def checkpoint_runs_or_stop() -> list[RunFolder]:
    """Runs that have a checkpoint; without any, say how to get one and end the page here."""
    candidates = loaders.checkpoint_runs()
    if not candidates:
        st.info("No trained model yet: train one on the Train page first.", icon=":material/info:")
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
        st.stop()
    return candidates


def best_run_id(candidates: list[RunFolder], data: list[str]) -> str | None:
    """The run to open on: the best finished run of the current dataset (best validation accuracy; a run
    that learned nothing last, then the newest), else of any dataset, else the newest."""
    summaries = [summarize(r) for r in candidates]
    same = [s for s in summaries if [str(Path(p)) for p in s.data] == [str(Path(p)) for p in data]]
    pool = [s for s in same or summaries if s.state == "finished"] or same or summaries
    ranked = sorted(pool, key=lambda s: (not s.learned_nothing, s.best_val_accuracy or 0, s.id), reverse=True)
    return ranked[0].id if ranked else None


def _default_run_id(candidates: list[RunFolder]) -> str | None:
    """The run this session follows (started, picked, or opened in Train) when it can be used here, else the
    best finished run of the current dataset."""
    cur = st.session_state.get(keys.CURRENT_RUN)
    if cur in {r.id for r in candidates}:
        return cur
    return best_run_id(candidates, st.session_state[keys.DATA_PATHS])


def pick_run(key: str, candidates: list[RunFolder], label: str = "Run") -> RunFolder:
    """A run picker that follows, and sets, the session's current run (the sidebar's RUN)."""
    by_id = {r.id: r for r in candidates}
    if st.session_state.get(key) not in by_id or st.session_state.get(keys.CURRENT_RUN) in by_id:
        st.session_state[key] = _default_run_id(candidates)

    def follow() -> None:
        st.session_state[keys.CURRENT_RUN] = st.session_state[key]

    rid = st.selectbox(label, list(by_id), key=key, on_change=follow,
                       format_func=lambda r: run_label(summarize(by_id[r])))
    return by_id[rid]
