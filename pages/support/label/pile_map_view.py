"""The whole pile as a map (bincls.labeling.pile_map): points coloured by answer, accepted guess or guess;
a box or lasso around some shows them and labels them all in one click."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from PIL import ImageOps

from bincls.labeling.pile_map import pile_map
from pages.support.shared import keys, loaders
from pages.support.shared.charts import pad_colour, style
from pages.support.shared.formatting import chart_text, md
from pages.support.shared.messages import flash

SHOWN = 24  # thumbnails of a selection shown (all of it is labelled)
SIDE = 160
COLOURS = ("#1f77b4", "#ff7f0e")  # the two classes, as the other charts
ss = st.session_state


MARKS = {"answered": ("circle", 9, 1.0), "accepted guess": ("diamond", 7, 0.9),
         "guess": ("circle-open", 6, 0.6), "not guessed yet": ("circle", 5, 0.4),
         "skip / neither": ("x", 6, 0.6)}  # fmt: skip
GREY = "#9e9e9e"


def _traces(rows, classes: tuple[str, str]):
    """(rows, legend name, colour, state) per trace: each class apart where a point has a class."""
    for state in MARKS:
        part = rows[rows.state == state]
        if state in ("not guessed yet", "skip / neither"):
            yield part, state, GREY, state
            continue
        for c, name in enumerate(classes):
            yield part[part.label == name], f"{chart_text(name)}: {state}", COLOURS[c], state


def _figure(rows, classes: tuple[str, str]) -> go.Figure:
    fig = go.Figure()
    for sub, legend, colour, state in _traces(rows, classes):
        if sub.empty:
            continue
        symbol, size, opacity = MARKS[state]
        fig.add_trace(go.Scattergl(
            x=sub.x, y=sub.y, mode="markers", name=legend, customdata=sub.path,
            marker={"color": colour, "symbol": symbol, "size": size, "opacity": opacity},
            hovertext=[chart_text(p) for p in sub.path], hoverinfo="text",
        ))  # fmt: skip
    style(fig, "The pile, by similarity (first two principal axes of its features)", "", "", height=460)
    fig.update_layout(dragmode="lasso")
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def _selected() -> list[str]:
    state = ss.get(keys.LABEL_MAP) or {}
    points = (state.get("selection") or {}).get("points") or []
    return sorted({p["customdata"] for p in points if isinstance(p.get("customdata"), str)})


def _label_all(session, paths: list[str], label: str | None) -> None:
    if label is None:
        session.forget(paths)
        flash(keys.LABEL_MESSAGE, "info", f"Took back the labels of {len(paths):,} images.")
    else:
        session.answer_many(dict.fromkeys(paths, label))
        ss[keys.LABEL_UNDO] = [*(ss.get(keys.LABEL_UNDO) or []), *paths][-200:]
        flash(keys.LABEL_MESSAGE, "success", f"Labelled {len(paths):,} images {md(label)}.")
    ss.pop(keys.LABEL_BATCH, None)  # the next batch is chosen knowing these


def pile_map_view(session) -> None:
    rows = pile_map(session)
    if rows.empty:
        return
    st.plotly_chart(_figure(rows, session.classes), key=keys.LABEL_MAP, on_select="rerun",
                    selection_mode=("lasso", "box"), width="stretch")  # fmt: skip
    paths = _selected()
    if not paths:
        st.caption("Draw a lasso or a box around points to see those images and label them together: "
                   "images side by side on the map look alike to the network.")  # fmt: skip
        return
    st.markdown(
        f"**{len(paths):,} images selected**" + (f" (the first {SHOWN} shown)" if len(paths) > SHOWN else "")
    )
    with st.container(horizontal=True, gap="small"):
        for path in paths[:SHOWN]:
            thumb = loaders.thumbnail(path, SIDE)
            if thumb is not None:
                st.image(ImageOps.pad(thumb, (SIDE, SIDE), color=pad_colour()), width=int(SIDE / 1.4))
    with st.container(horizontal=True, gap="small"):
        a, b = session.classes
        for label in (a, b, "neither"):
            st.button(f"All {len(paths):,} are {md(label)}", key=f"label_map_{label}", on_click=_label_all,
                      args=(session, paths, label))  # fmt: skip
        st.button("Take their labels back", key="label_map_forget", on_click=_label_all,
                  args=(session, paths, None), icon=":material/undo:")  # fmt: skip
