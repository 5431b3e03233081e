"""The Data page's label audit: run it on the current dataset, then review its findings a page at a time.

Each reviewed image gets keep / exclude / relabel, saved at once into the dataset's overlay
(`bincls.data.overlay`), which the next training run honours. The user's files are never touched.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st
from PIL import ImageOps

from bincls import BinclsError
from bincls.data.browse import folder_fingerprint
from bincls.data.overlay import forget_decisions, load_decisions, overlay_path
from pages.support.data.audit_bulk import bulk_actions
from pages.support.shared import keys, loaders
from pages.support.shared.charts import pad_colour
from pages.support.shared.decisions import save_decision
from pages.support.shared.formatting import as_text, code, md
from pages.support.shared.messages import flash, show_error, show_flashed
from pages.support.shared.weights_offer import weights_news, weights_offer

ss = st.session_state
ROWS_PER_PAGE = 20
THUMB_SIDE = 112
KINDS = {"label": "Likely wrong label", "outlier": "Outlier", "near-duplicate": "Near-duplicate"}
SHOW = {"all": "All", "label": "Wrong labels", "outlier": "Outliers", "near-duplicate": "Near-duplicates"}
WHY = {
    "label": "Out-of-sample, a classifier on pretrained features says it is the other class.",
    "outlier": "Unlike the other images of the dataset (a placeholder, a drawing, another subject…).",
    "near-duplicate": "Almost the same picture as another image: it may sit in train and test at once.",
}


@st.cache_data(show_spinner=False, max_entries=8)
def _audit(paths: tuple[str, ...], names: tuple[str, ...] | None, fingerprint: tuple):
    from bincls.audit.label_audit import audit

    slot = st.empty()  # made in here: a cached call can only replay elements into blocks it made

    def progress(stage: str, done: int, total: int) -> None:
        slot.progress(done / max(total, 1), text=f"Label audit: {stage}, {done:,} of {total:,} images")

    try:
        return audit(list(paths), list(names) if names else None, progress=progress)
    finally:
        slot.empty()


def _dataset() -> tuple[list[str], tuple[str, ...] | None]:
    paths = [str(p) for p in ss[keys.DATA_PATHS]]
    names = ss[keys.CLASS_NAMES]
    return paths, tuple(names) if names else None


def _key(paths: list[str], names) -> str:
    return "\0".join(paths) + "\1" + "\0".join(names or ())


def _widget_key(path: str) -> str:
    return keys.AUDIT_DECISION + hashlib.sha1(path.encode()).hexdigest()[:16]


def _decide(data: list[str], path: str) -> None:
    """Decision widget callback: save the choice at once (no choice: forget the decision)."""
    save_decision(data, path, ss.get(_widget_key(path)), keys.AUDIT_MESSAGE)


def _forget_all(data: list[str], paths: list[str]) -> None:
    try:
        forget_decisions(data)
    except OSError as exc:
        flash(keys.AUDIT_MESSAGE, "error", f"The decisions were not forgotten: {as_text(exc)}")
        return
    _forget_widgets(paths)
    ss.pop(keys.AUDIT_BULK_UNDO, None)  # nothing left to undo
    flash(keys.AUDIT_MESSAGE, "success", "All decisions forgotten: the next run trains on the images as "
                                         "they are filed.")


def _forget_widgets(paths: list[str]) -> None:
    """Drop the decision widgets' state of `paths`: they start again from the overlay (in a callback)."""
    for p in paths:
        ss.pop(_widget_key(p), None)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def decisions_summary(data: list[str]) -> dict[str, int]:
    decided = load_decisions(data)
    return {a: sum(1 for v in decided.values() if v == a) for a in ("exclude", "relabel", "keep")}


def audit_section() -> None:
    """The whole section: the button, the audit's summary, the decisions in force, the review grid."""
    paths, names = _dataset()
    dataset = _key(paths, names)
    st.caption(
        "The audit looks at every image with a pretrained network and lists the ones worth a look: "
        "labels it believes are wrong, outliers and near-duplicates. It only reads your files; what you "
        "decide below is kept in bincls' own folder and applied by the next training run."
    )
    weights_news()
    if loaders.pretrained_at_hand() is None:  # offline, empty torch cache: say where the weights go
        st.warning("The audit needs a pretrained network, and there are no ImageNet weights here (no file in "
                   "the torch cache, no network).", icon=":material/cloud_off:")  # fmt: skip
        weights_offer("audit")
        _decisions_line(paths)
        return
    if not (ss.get(keys.AUDIT_ASKED) or {}).get(dataset):
        _audit_button(dataset)
        _decisions_line(paths)
        return
    try:
        with st.spinner("Auditing the labels…"):
            result = _audit(tuple(paths), names, folder_fingerprint(paths))
    except BinclsError as exc:
        _ask(dataset, False)
        show_error(exc)
        _audit_button(dataset)  # to try again once the cause is fixed
        return
    show_flashed(keys.AUDIT_MESSAGE)
    counts = {k: sum(1 for r in result.rows if r.kind == k) for k in KINDS}
    st.markdown(
        f"**{len(result.rows)} of {result.images} images are worth a look**: "
        f"{_count(counts['label'], 'likely wrong label')}, {_count(counts['outlier'], 'outlier')}, "
        f"{_count(counts['near-duplicate'], 'near-duplicate')} (features of {result.model}, "
        f"{result.seconds:.0f} s)."
    )
    for note in result.notes:
        st.caption(as_text(note))
    _decisions_line(paths, [r.path for r in result.rows])
    if not result.rows:
        st.success("Nothing to review: no label, outlier or near-duplicate stands out.",
                   icon=":material/check_circle:")
        return
    review_grid(paths, result.rows, counts)


def _ask(dataset: str, yes: bool = True) -> None:
    asked = {k: v for k, v in (ss.get(keys.AUDIT_ASKED) or {}).items() if k != dataset}
    ss[keys.AUDIT_ASKED] = {**asked, dataset: True} if yes else asked


def _audit_button(dataset: str) -> None:
    # A callback, so that the run it starts no longer draws the button above the results
    st.button("Run the label audit", icon=":material/plagiarism:", type="primary", on_click=_ask,
              args=(dataset,), help="A minute or so for a few thousand images on a CPU; the result is kept.")


def _decisions_line(data: list[str], shown_paths: list[str] | None = None) -> None:
    n = decisions_summary(data)
    total = sum(n.values())
    if not total:
        st.caption("No decisions yet: a run trains on the images as they are filed.")
        return
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.info(
        f"**{total} decision{'s' if total != 1 else ''} in force** for this dataset: {n['exclude']} "
        f"excluded, {n['relabel']} relabelled, {n['keep']} kept as they are. The next training run "
        "leaves the excluded images out and trains the relabelled ones as the other class. Your files "
        f"are never changed: the decisions are kept in {code(overlay_path(data))}.",
        icon=":material/rule:",
    )
    right.button("Forget all decisions", icon=":material/undo:", on_click=_forget_all,
                 args=(data, shown_paths or []), width="stretch",
                 help="Train on the images as they are filed (drops the decisions, never the files)")


def review_grid(data: list[str], rows: list, counts: dict[str, int]) -> None:
    """The audit's rows, most likely problems first, ROWS_PER_PAGE at a time, a decision on each; the bulk
    actions above them."""
    bulk_actions(data, rows, _forget_widgets)
    options = [k for k in SHOW if k == "all" or counts.get(k)]
    if ss.get(keys.AUDIT_SHOW) not in options:
        ss[keys.AUDIT_SHOW] = "all"
    show = st.segmented_control(
        "Show", options, key=keys.AUDIT_SHOW, required=True,
        format_func=lambda k: f"{SHOW[k]} ({len(rows) if k == 'all' else counts[k]})",
    )  # fmt: skip
    picked = [r for r in rows if show in (None, "all") or r.kind == show]
    pages = max(1, -(-len(picked) // ROWS_PER_PAGE))
    if ss.get(keys.AUDIT_PAGE, 1) > pages:  # fewer rows than before: a page past the end fails
        ss[keys.AUDIT_PAGE] = pages
    page = 1
    if pages > 1:
        page = st.number_input(f"Page (of {pages})", 1, pages, step=1, key=keys.AUDIT_PAGE, width=200)
    start = (page - 1) * ROWS_PER_PAGE
    decided = load_decisions(data)
    for row in picked[start : start + ROWS_PER_PAGE]:
        _row(data, row, decided.get(row.path))
    st.caption(f"Rows {start + 1}–{min(start + ROWS_PER_PAGE, len(picked))} of {len(picked)}, the most "
               "likely problems first. A choice is saved as soon as it is made; click it again to undo.")


def _row(data: list[str], row, decided: str | None) -> None:
    key = _widget_key(row.path)
    if key not in ss:  # the overlay is the truth a widget starts from (widget state is lost between pages)
        ss[key] = decided
    options = ["keep", "exclude", "relabel"] if row.kind == "label" else ["keep", "exclude"]
    labels = {"keep": "Keep", "exclude": "Exclude", "relabel": f"Relabel as {md(row.suggested)}"}
    path = Path(row.path)
    with st.container(border=True):
        c_img, c_info, c_choice = st.columns([1, 4, 3], vertical_alignment="center")
        thumb = loaders.thumbnail(row.path, THUMB_SIDE)
        if thumb is not None:
            square = ImageOps.pad(thumb, (THUMB_SIDE, THUMB_SIDE), color=pad_colour())
            c_img.image(square, width=THUMB_SIDE)
        else:
            c_img.caption("(cannot be shown)")
        suggestion = f" · suggested **{md(row.suggested)}**" if row.kind == "label" else ""
        c_info.markdown(f"**{KINDS.get(row.kind, row.kind)}** · score {row.score:.2f}  \n"
                        f"given **{md(row.given)}**{suggestion}")
        why = as_text(row.detail or WHY.get(row.kind, ""))
        c_info.caption(f"{md(f'{path.parent.name}/{path.name}')} · {why}",
                       help=f"{md(row.path)}\n\n{WHY.get(row.kind, '')}")
        with c_choice:
            st.segmented_control(
                f"Decision on {md(path.name)}", options, key=key, format_func=labels.get,
                on_change=_decide, args=(data, row.path), label_visibility="collapsed",
            )  # fmt: skip
