"""The label audit's bulk actions: accept every suggested relabel at or above a score, exclude every outlier
at or above one, and undo the last of them. The engine (`bincls.audit.bulk`) picks the rows and keeps
the undo record; everything goes to the same overlay as the per-image decisions."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from bincls import BinclsError
from bincls.audit.bulk import KIND_OF, BulkChange, apply_bulk, picked, undo_bulk
from bincls.data.overlay import load_decisions, overlay_path
from pages.support.shared import keys
from pages.support.shared.formatting import as_text, count
from pages.support.shared.messages import flash

ss = st.session_state
DEFAULT_SCORE = {"relabel": 0.8, "exclude": 0.7}
ASK = {"relabel": "Accept the suggested relabels with score ≥",
       "exclude": "Exclude the outliers with score ≥"}
DONE = {"relabel": "relabelled", "exclude": "excluded"}
VERB = {"relabel": "Relabel", "exclude": "Exclude"}
SCORE_HELP = {
    "relabel": "The score of a suggested relabel is how sure the audit's classifier, which never saw the "
               "image, is that it belongs to the other class (0.5: undecided, 1: certain).",
    "exclude": "The score of an outlier is how unlike the other images of the dataset it is (1: the least "
               "like them).",
}  # fmt: skip
Forget = Callable[[list[str]], None]  # drops the per-image widgets' state, so they show the overlay again


def bulk_actions(data: list[str], rows: list, forget_widgets: Forget) -> None:
    """One box over the review: a threshold, how many images it would decide and a button per bulk action
    the rows allow; the undo of the last bulk action on this dataset."""
    offered = [a for a in KIND_OF if any(r.kind == KIND_OF[a] for r in rows)]
    undo = _undo_record(data)
    if not offered and undo is None:
        return
    decided = load_decisions(data)
    with st.container(border=True):
        st.markdown("**Decide many at once**")
        for col, action in zip(st.columns(2), offered):
            with col:
                _action(data, rows, action, decided, forget_widgets)
        if undo is not None:
            st.button(
                f"Undo: {count(len(undo), 'image')} {DONE[undo.action]} at score ≥ {undo.min_score:.2f}",
                icon=":material/undo:", on_click=_undo, args=(data, forget_widgets),
                help="Puts back exactly the decisions from before that bulk action (one changed by hand "
                     "since is left as it is).",
            )  # fmt: skip
        st.caption("A bulk action decides only images nobody has decided yet; a decision made by hand on an "
                   "image stays. Like every decision here, it is kept in bincls' own folder: your files are "
                   "never changed.")  # fmt: skip


def _action(data: list[str], rows: list, action: str, decided, forget_widgets: Forget) -> None:
    key = keys.AUDIT_BULK + action
    ss.setdefault(key, DEFAULT_SCORE[action])
    score = st.number_input(ASK[action], 0.0, 1.0, step=0.05, format="%.2f", key=key, help=SCORE_HELP[action])
    n = len(picked(rows, action, score, decided))
    at_or_above = {r.path for r in rows if r.kind == KIND_OF[action] and r.score >= score}
    left = len(at_or_above) - n
    kept = f" ({left} already decided: left as {'it is' if left == 1 else 'they are'})" if left else ""
    st.caption(f"Would {VERB[action].lower()} **{count(n, 'image')}**{kept}.")
    st.button(f"{VERB[action]} {count(n, 'image')}", key=f"{key}-go", icon=":material/done_all:",
              disabled=not n, on_click=_apply, args=(data, rows, action, forget_widgets))


def _undo_record(data: list[str]) -> BulkChange | None:
    where, change = ss.get(keys.AUDIT_BULK_UNDO) or (None, None)
    return change if where == str(overlay_path(data)) else None


def _apply(data: list[str], rows: list, action: str, forget_widgets: Forget) -> None:
    """Button callback: the threshold is read here, as the widget holds it at the click."""
    score = ss[keys.AUDIT_BULK + action]
    try:
        change = apply_bulk(data, rows, action, score)
    except (BinclsError, OSError) as exc:
        flash(keys.AUDIT_MESSAGE, "error", f"The bulk action was not saved: {as_text(exc)}")
        return
    forget_widgets(list(change.before))
    ss[keys.AUDIT_BULK_UNDO] = (str(overlay_path(data)), change)
    what = ("the next training run trains them as the other class" if action == "relabel"
            else "the next training run leaves them out")  # fmt: skip
    flash(keys.AUDIT_MESSAGE, "success",
          f"{count(len(change), 'image')} {DONE[action]} (score ≥ {score:.2f}): {what}. Undo puts back the "
          "decisions from before.")


def _undo(data: list[str], forget_widgets: Forget) -> None:
    change = _undo_record(data)
    if change is None:
        return
    try:
        restored = undo_bulk(data, change)
    except (BinclsError, OSError) as exc:
        flash(keys.AUDIT_MESSAGE, "error", f"The undo was not saved: {as_text(exc)}")
        return
    ss.pop(keys.AUDIT_BULK_UNDO, None)
    forget_widgets(list(change.before))
    changed = len(change) - restored
    since = f"; {count(changed, 'image')} decided by hand since then kept as decided" if changed else ""
    flash(keys.AUDIT_MESSAGE, "success", f"Undone: {count(restored, 'image')} back as before{since}.")
