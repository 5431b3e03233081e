"""Where the labelling stands (counts, the accuracy estimate, confident guesses), and what to do with the
labels: accept the confident guesses (with an undo), download them, train on them."""

from __future__ import annotations

import streamlit as st

from bincls import BinclsError
from pages.support.shared import keys
from pages.support.shared.formatting import md
from pages.support.shared.messages import flash
from pages.support.shared.state import data_changed

ss = st.session_state


def status_row(session):
    """The metrics row; returns the engine's Status for the actions below."""
    status = session.status()
    a, b = session.classes
    ans, acc = status.answered, status.accepted
    with st.container(horizontal=True, gap="medium"):
        for name in (a, b):
            extra = f" + {acc[name]} accepted" if acc[name] else ""
            st.metric(md(name), f"{ans[name]}{extra}", help="answers (and accepted guesses) of this class")
        st.metric("Skip / neither", f"{ans['skip']} / {ans['neither']}")
        st.metric("Not labelled", f"{status.unlabelled:,}")
        # the interval is not a change: no green arrow
        st.metric("Guess accuracy", *_estimate(status), delta_color="off", delta_arrow="off")
        conf = sum(status.confident.values())
        st.metric(f"Confident guesses (≥ {status.confident_cut:.0%})", f"{conf:,}",
                  help=" · ".join(f"{md(n)}: {c:,}" for n, c in status.confident.items()))  # fmt: skip
    for note in status.notes:
        st.caption(md(note))
    return status


def _estimate(status) -> tuple[str, str | None]:
    e = status.estimate
    if e is None:
        return "–", None
    lo, hi = e.interval
    return f"{e.accuracy:.0%}", f"95%: {lo:.0%}–{hi:.0%} ({e.answered} answers)"


def _accept(session) -> None:
    before = {k for k, v in session.entries().items() if v.get("how") == "accepted"}
    done = session.accept_confident()
    keys_now = {k for k, v in session.entries().items() if v.get("how") == "accepted"}
    added = sorted(keys_now - before)
    ss[keys.LABEL_ACCEPTED] = added
    flash(keys.LABEL_MESSAGE, "success", f"Accepted {done.added:,} confident guesses as labels (marked as "
          "accepted guesses, not answers).")  # fmt: skip


def _undo_accept(session) -> None:
    added = ss.pop(keys.LABEL_ACCEPTED, None) or []
    by_key = dict(zip(session.pile.keys, session.pile.paths))
    session.forget([by_key[k] for k in added if k in by_key])
    flash(keys.LABEL_MESSAGE, "info", f"Took back {len(added):,} accepted guesses.")


def actions(session, status) -> None:
    conf = sum(status.confident.values())
    with st.container(horizontal=True, gap="small"):
        st.button(f"Accept the {conf:,} confident guesses", disabled=not conf, on_click=_accept,
                  args=(session,), icon=":material/done_all:")  # fmt: skip
        if ss.get(keys.LABEL_ACCEPTED):
            st.button("Undo accepting", on_click=_undo_accept, args=(session,), icon=":material/undo:")
        labelled = len(session.labels())
        # Written when clicked, not on every rerun (each answer reruns the page).
        st.download_button(f"Download the {labelled:,} labels (CSV)", data=lambda: _csv_bytes(session),
                           file_name="labels.csv",
                           mime="text/csv", disabled=not labelled, on_click="ignore",
                           icon=":material/download:")  # fmt: skip
        if st.button("Train on these labels", type="primary", disabled=labelled < 4,
                     icon=":material/model_training:"):  # fmt: skip
            _train_on(session)


def _csv_bytes(session) -> bytes:
    return session.export(session.labels_file()).read_bytes()


def _train_on(session) -> None:
    """The labels as a CSV in bincls' cache folder, made the current dataset; then the Train page."""
    try:
        path = session.export(session.labels_file())
    except BinclsError as exc:
        st.error(md(exc))
        return
    if [str(path)] != ss.get(keys.DATA_PATHS):
        data_changed()
    ss[keys.DATA_PATHS], ss[keys.CLASS_NAMES] = [str(path)], None
    flash(
        keys.DATA_MESSAGE, "success", f"Now using the {len(session.labels()):,} labels from the Label page."
    )
    st.switch_page("pages/train.py")
