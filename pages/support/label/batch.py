"""The batch of images to label next: cards with the guess pre-selected, a cursor for the keyboard.

Every answer is written the moment it is given (a click on a card, or a key for the card under the
cursor), so a reload or a second tab loses nothing. "Next batch" confirms the cards not touched as they
show (most are a confirmed guess) and asks the engine for the next ones.
"""

from __future__ import annotations

import streamlit as st
from PIL import ImageOps

from bincls.data.keyed_store import path_keys
from pages.support.shared import keys, loaders
from pages.support.shared.charts import pad_colour
from pages.support.shared.formatting import md
from pages.support.shared.messages import flash

BATCH = 8
PRESELECT = 0.6  # a guess less sure than this is shown, not pre-selected
CARD_WIDTH, SIDE = 164, 320  # two cards a row on a phone (390 px), four on a laptop
SKIP, NEITHER = "skip", "neither"
# Streamlit's own button shortcuts (no extra JavaScript): one key per class, skip, neither, next batch,
# undo. "C" and "R" are reserved by Streamlit.
KEYS = {"a": "1", "b": "2", SKIP: "S", NEITHER: "N", "next": "Enter", "undo": "U"}
WHY = {"diverse": "to cover the pile", "unlike the answers": "unlike anything answered",
       "uncertain": "the model is unsure", "likely rare": "likely the rarer class"}  # fmt: skip

ss = st.session_state


def _batch(session) -> dict:
    """The batch on screen; a new one when there is none (first visit, reload, after "Next batch")."""
    batch = ss.get(keys.LABEL_BATCH)
    if batch is None:
        items = [{**s.to_dict(), "why": s.why} for s in session.suggest(BATCH)] if _free(session) else []
        batch = {"n": ss.get("label_batch_count", 0) + 1, "items": items}
        ss["label_batch_count"], ss[keys.LABEL_BATCH] = batch["n"], batch
    return batch


def _free(session) -> bool:
    return len(session.entries()) + len(session.unreadable) < len(session.pile.paths)


def _guess(item: dict) -> str | None:
    """The card's pre-selected answer: the guess when it is at least PRESELECT sure, else none (before the
    session has a model every p is 0.5: "Next batch" must not confirm coin tosses as answers)."""
    return item["guess"] if item["p"] >= PRESELECT else None


def _card_key(batch: dict, i: int) -> str:
    return f"{keys.LABEL_CARD}{batch['n']}_{i}"


def _answered(session, batch: dict) -> dict[str, str]:
    """{path: label} for this batch's images that have an answer now (from any tab)."""
    entries = session.entries()
    paths = [it["path"] for it in batch["items"]]
    return {p: entries[k]["label"] for p, k in zip(paths, path_keys(paths)) if k in entries}


def _cursor(session, batch: dict) -> int | None:
    done = _answered(session, batch)
    return next((i for i, it in enumerate(batch["items"]) if it["path"] not in done), None)


def _answer(session, path: str, label: str) -> None:
    session.answer(path, label)
    ss[keys.LABEL_UNDO] = [*(ss.get(keys.LABEL_UNDO) or []), path][-200:]


def _on_card(session, batch: dict, i: int) -> None:
    item = batch["items"][i]
    value, path = ss.get(_card_key(batch, i)), item["path"]
    if value:
        _answer(session, path, value)
    elif _guess(item) and path not in _answered(session, batch):
        # A click on the pre-selected guess means "yes, that": confirm it (the control would un-choose it
        # and leave the card unlabelled, so the most common answer would be lost).
        ss[_card_key(batch, i)] = _guess(item)
        _answer(session, path, _guess(item))
    else:  # an answer clicked off: the image is unlabelled again
        session.forget([path])


def _on_key(session, batch: dict, label: str) -> None:
    i = _cursor(session, batch)
    if i is None:
        return
    ss[_card_key(batch, i)] = label
    _answer(session, batch["items"][i]["path"], label)


def _next_batch(session, batch: dict) -> None:
    done = _answered(session, batch)
    confirm = {}
    for i, it in enumerate(batch["items"]):
        if it["path"] not in done:
            shown = ss.get(_card_key(batch, i)) or _guess(it)
            if shown:  # a card with nothing chosen stays unlabelled
                confirm[it["path"]] = shown
    if confirm:
        session.answer_many(confirm)
        ss[keys.LABEL_UNDO] = [*(ss.get(keys.LABEL_UNDO) or []), *confirm][-200:]
    ss.pop(keys.LABEL_BATCH, None)


def _undo(session) -> None:
    stack = ss.get(keys.LABEL_UNDO) or []
    if not stack:
        return
    path = stack.pop()
    session.forget([path])
    flash(keys.LABEL_MESSAGE, "info", f"Took back the answer on {md(path)}.")
    batch = ss.get(keys.LABEL_BATCH)
    for i, it in enumerate((batch or {}).get("items", [])):
        if it["path"] == path:
            ss[_card_key(batch, i)] = _guess(it)


def batch_grid(session) -> None:
    batch = _batch(session)
    if not batch["items"]:
        st.success("Every image of the pile has an answer or an accepted guess.", icon=":material/done_all:")
        return
    a, b = session.classes
    options = [a, b, SKIP, NEITHER]
    done, cursor = _answered(session, batch), _cursor(session, batch)
    with st.container(horizontal=True, gap="small"):
        for i, item in enumerate(batch["items"]):
            with st.container(width=CARD_WIDTH, border=True):
                _card(session, batch, i, item, options, done.get(item["path"]), i == cursor)
    _buttons(session, batch, (a, b))


def _card(
    session, batch, i: int, item: dict, options: list[str], answer: str | None, at_cursor: bool
) -> None:
    key = _card_key(batch, i)
    if key not in ss or (answer is not None and ss[key] != answer):
        # the stored answer wins over what this tab last showed: another tab may have answered the card
        ss[key] = answer or _guess(item)
    thumb = loaders.thumbnail(item["path"], SIDE)
    if thumb is not None:
        st.image(ImageOps.pad(thumb, (SIDE, SIDE), color=pad_colour()), width="stretch")
    if answer is not None:
        st.markdown(f":green[✔ **{md(answer)}**] saved")
    else:
        guess = "no guess yet" if item["p"] == 0.5 else f"guess **{md(item['guess'])}** {item['p']:.0%}"
        if item["p"] != 0.5 and not _guess(item):
            guess += " · unsure"
        st.markdown(f":blue[▶ **keys**] · {guess}" if at_cursor else guess)
    st.segmented_control("Answer", options, key=key, label_visibility="collapsed", format_func=str,
                         on_change=_on_card, args=(session, batch, i))  # fmt: skip
    st.caption(f"Asked: {WHY.get(item['why'], item['why'])}", help=md(item["path"]))


def _buttons(session, batch: dict, classes: tuple[str, str]) -> None:
    with st.container(horizontal=True, gap="small"):
        for label, key in ((classes[0], "a"), (classes[1], "b"), (SKIP, SKIP), (NEITHER, NEITHER)):
            st.button(f"{md(label)}", key=f"label_key_{key}", shortcut=KEYS[key], on_click=_on_key,
                      args=(session, batch, label), help="answers the card marked ▶")  # fmt: skip
        st.button("Undo", key="label_key_undo", shortcut=KEYS["undo"], on_click=_undo, args=(session,),
                  icon=":material/undo:", disabled=not ss.get(keys.LABEL_UNDO))  # fmt: skip
        st.button("Next batch", key="label_key_next", shortcut=KEYS["next"], type="primary",
                  on_click=_next_batch, args=(session, batch), icon=":material/arrow_forward:",
                  help="saves every card as it shows (its guess unless changed), brings 8 more")  # fmt: skip
    st.caption("Keys: **1** / **2** answer the card marked ▶ with the first / second class, **S** skip, "
               "**N** neither (left out), **U** undo, **Enter** next batch. \"Neither\" keeps an image out "
               "of both classes; \"skip\" only puts it aside.")  # fmt: skip
