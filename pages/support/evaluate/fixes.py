"""Evaluate's relabel / exclude buttons on the gallery cards: a wrong label found after training is fixed
where it is seen, in the same overlay the Data page's label audit writes (`bincls.data.overlay`), for the
dataset the image comes from. The next training run on that dataset honours it; the files stay as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from bincls import BinclsError
from bincls.audit.evaluated import decisions_dataset, filed_class, honoured_decisions, other_class
from bincls.data.overlay import Decisions, load_decisions, overlay_path
from bincls.runs.folder import RunFolder
from pages.support.shared import keys
from pages.support.shared.decisions import save_decision
from pages.support.shared.formatting import as_text, code, data_label, md

ss = st.session_state


@dataclass(frozen=True)
class Fixes:
    """What the cards need: the dataset whose overlay they write, the run's classes, the decisions the run
    trained with (to tell the class an image is filed under) and those in force now."""

    data: list[str]
    names: list[str]
    honoured: Decisions
    decided: Decisions


def fixes_for(run: RunFolder, folders: list[str] | None, names: list[str]) -> Fixes | None:
    """The fixes for the images evaluated (`folders`: another folder, else the run's test split), with a
    note on where they go; None, with the reason, when the dataset cannot be found any more."""
    data = decisions_dataset(run.config(), folders)
    try:
        where = overlay_path(data) if data else None
        decided = load_decisions(data) if data else None
    except (BinclsError, OSError) as exc:
        st.caption(f"Relabelling or excluding images here is not possible: {as_text(exc)}")
        return None
    if where is None or decided is None:
        st.caption("Relabelling or excluding images here is not possible: the run does not say which data "
                   "it trained on.")  # fmt: skip
        return None
    n = len(decided)
    st.caption(
        f"**Relabel** or **exclude** an image from its card below: the decision joins the label audit's "
        f"decisions for {md(data_label(data))} ({n} decision{'' if n == 1 else 's'} in force), kept in "
        f"{code(where)}, and the next training run on that data uses them. Your files are never changed."
    )  # fmt: skip
    honoured = honoured_decisions(run.path) if folders is None else Decisions()
    return Fixes(data, list(names), honoured, decided)


def card_actions(fixes: Fixes | None, gallery: str) -> Callable | None:
    """The `actions` of `widgets.result_gallery` for one gallery (its buttons need keys of their own: an
    image can be in two galleries at once)."""
    if fixes is None:
        return None
    return lambda row: _card(fixes, gallery, row)


SAID = {"exclude": "Excluded", "keep": "Kept as filed"}


def _card(fixes: Fixes, gallery: str, row) -> None:
    key = f"{keys.EVAL_FIX}{gallery}-{hashlib.sha1(str(row.path).encode()).hexdigest()[:16]}"
    filed = filed_class(row.path, row.true, fixes.names, fixes.honoured)
    to = other_class(filed, fixes.names)
    decided = fixes.decided.get(row.path)
    if decided is not None:
        what = f"Relabelled to **{md(to)}**" if decided == "relabel" else SAID[decided]
        st.markdown(f"{what}  \n:gray[for the next run]")
        st.button("Undo", key=f"{key}-undo", icon=":material/undo:", width="stretch", on_click=_decide,
                  args=(fixes.data, row.path, None), help="Train this image as it is filed again")
        return
    st.button(f"Relabel to {md(to)}", key=f"{key}-relabel", icon=":material/swap_horiz:", width="stretch",
              on_click=_decide, args=(fixes.data, row.path, "relabel"),
              help=f"The next training run trains {md(Path(row.path).name)} as {md(to)}; the file stays "
                   "where it is.")  # fmt: skip
    st.button("Exclude", key=f"{key}-exclude", icon=":material/block:", width="stretch", on_click=_decide,
              args=(fixes.data, row.path, "exclude"), help="The next training run leaves this image out.")


def _decide(data: list[str], path: str, action: str | None) -> None:
    """Button callback: save the decision at once (None: forget it)."""
    save_decision(data, path, action, keys.EVAL_MESSAGE)
