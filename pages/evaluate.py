"""Evaluate page: how good is a trained model on images it never saw, and at which decision threshold."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from bincls import BinclsError
from bincls.inference.evaluate import (
    at_threshold,
    both_classes,
    cell_images,
    find_checkpoint,
    most_wrong,
    save_threshold,
    saved_threshold,
)
from bincls.training.config import config_problem
from pages.support.evaluate import metric_charts as charts
from pages.support.evaluate import views
from pages.support.evaluate.fixes import card_actions, fixes_for
from pages.support.shared import keys, loaders
from pages.support.shared.export_panel import export_panel
from pages.support.shared.formatting import as_text, code, md
from pages.support.shared.messages import engine_words, flash, show_flashed, stop_on_error
from pages.support.shared.state import keep_widget_state, require_app
from pages.support.shared.widgets import GALLERY_COLUMNS, checkpoint_runs_or_stop, pick_run, result_gallery

require_app(__file__)

ss = st.session_state
st.title("Evaluate")
st.caption("How good is the model on images it never saw during training, and which threshold suits you?")
keep_widget_state([keys.EVAL_SOURCE, keys.EVAL_FOLDER, keys.EVAL_THRESHOLD])
show_flashed(keys.EVAL_MESSAGE)

candidates = checkpoint_runs_or_stop()

top = st.columns([3, 2, 3], vertical_alignment="bottom")
with top[0]:
    run = pick_run(keys.EVAL_RUN, candidates)
with top[1]:
    ss.setdefault(keys.EVAL_SOURCE, "test")
    source = st.radio("Evaluate on", ["test", "folder"], key=keys.EVAL_SOURCE, horizontal=True,
                      format_func={"test": "Its test split", "folder": "Another folder"}.get)
if problem := config_problem(run.path):
    st.warning(f"{as_text(problem)} The evaluation below uses the checkpoint, which holds what it needs.",
               icon=":material/warning:")
data = None
if source == "folder":
    with top[2]:
        folder = st.text_input("Folder with one subfolder per class", key=keys.EVAL_FOLDER,
                               placeholder="/path/to/folder holding the class folders")
    if not folder.strip():
        names = run.config().get("class_names") or []
        named = f" ({', '.join(md(n) for n in names)})" if names else ""
        st.info(f"Give a folder that holds two class folders named like the run's classes{named}.",
                icon=":material/folder_open:")
        st.stop()
    data = [folder.strip()]

with stop_on_error():
    ckpt, _ = find_checkpoint(run.path)
    ev = loaders.evaluation(run, data)

names = ev.class_names
negative, positive = names
neg, pos = md(negative), md(positive)  # as shown in markdown
views.chance_warnings(run, ev)
# The run's saved threshold, else the one training chose (the evaluation was made at it), as Predict uses
saved = saved_threshold(run) if run.config().get("threshold") is not None else ev.threshold
if ss.get(keys.EVAL_THRESHOLD_FOR) != run.id or keys.EVAL_THRESHOLD not in ss:
    ss[keys.EVAL_THRESHOLD] = saved
    ss[keys.EVAL_THRESHOLD_FOR] = run.id
for note in ev.notes:
    st.info(as_text(note), icon=":material/info:")

left, mid, right = st.columns([5, 1.4, 1.2], vertical_alignment="bottom")
threshold = left.slider(
    f"Decision threshold: say **{pos}** when P({pos}) ≥ threshold", 0.0, 1.0, step=0.01,
    key=keys.EVAL_THRESHOLD,
    help="Moving it recomputes metrics, confusion matrix and galleries from the saved predictions.",
)  # fmt: skip
changed = abs(threshold - saved) > 1e-9
if mid.button("Save threshold", icon=":material/save:", disabled=not changed, width="stretch",
              help=f"Store it in the run's config.json; Predict uses it. Saved now: {saved:.2f}"):
    try:
        save_threshold(run.path, threshold)
        where = run.path / "config.json"
        flash(keys.EVAL_MESSAGE, "success",
              f"Threshold {threshold:.2f} saved in {code(where)}; Predict uses it.")
    except BinclsError as exc:
        flash(keys.EVAL_MESSAGE, "error", engine_words(exc))
    st.rerun()
with right.popover("Formulas", icon=":material/function:", width="stretch"):
    st.markdown(views.formulas(positive, negative))

cur = at_threshold(ev, threshold)
m = cur.metrics
views.metrics_row(m, at_threshold(ev, saved).metrics if changed else None)
(tn, fp), (fn, tp) = m["confusion_matrix"]
counts = ev.table["true"].value_counts()
st.caption(
    f"{m['n']} images ({as_text(ev.source)}: {counts.get(negative, 0)} {neg}, "
    f"{counts.get(positive, 0)} {pos}) · "
    f"threshold {threshold:.2f}{' (saved)' if not changed else f' (saved: {saved:.2f})'} · "
    f"TP {tp} · FP {fp} · TN {tn} · FN {fn} · checkpoint {code(Path(ev.checkpoint).name)}"
)

cell = views.selected_cell(names)
c1, c2 = st.columns(2)
with c1:
    st.plotly_chart(charts.confusion_matrix(m["confusion_matrix"], names, cell), key=keys.EVAL_MATRIX,
                    on_select=views.remember_cell, selection_mode="points", config={"displayModeBar": False})
curves = both_classes(ev) and not views.tied(ev)
with c2:
    if curves:
        st.plotly_chart(charts.roc(ev, m), config={"displaylogo": False})
    elif views.tied(ev):
        st.info("No ROC, precision-recall or calibration curve: the model gave every image the same "
                "probability, so no threshold separates anything and the curves would only draw the "
                "diagonal.", icon=":material/info:")  # fmt: skip
    else:
        st.info("ROC and precision-recall curves need images of both classes.", icon=":material/info:")
if curves:
    c3, c4 = st.columns(2)
    c3.plotly_chart(charts.precision_recall(ev, m, positive), config={"displaylogo": False})
    c4.plotly_chart(charts.calibration_curve(ev, positive), config={"displaylogo": False})
    c4.caption(views.calibration_note(ev.metrics))

fixes = fixes_for(run, data, names)
if cell:
    rows = cell_images(cur, *cell)
    head, close = st.columns([6, 1], vertical_alignment="bottom")
    head.subheader(f"True {md(cell[0])}, predicted {md(cell[1])}: {len(rows)} images", anchor=False)
    if close.button("Hide", icon=":material/close:", width="stretch"):
        ss[keys.EVAL_CELL] = None
        st.rerun()
    if rows.empty:
        st.caption("No images in this cell at this threshold.")
    else:
        result_gallery(rows.head(24), positive, card_actions(fixes, "cell"))
        if len(rows) > 24:
            st.caption(f"…and {len(rows) - 24} more: download the CSV below for all of them.")
else:
    st.caption("Click a cell of the confusion matrix to see its images here.")

st.subheader("Most wrong", anchor=False)
wrong = most_wrong(cur, k=GALLERY_COLUMNS * 2)
if wrong.empty:
    st.caption("No image is wrong at this threshold.")
else:
    st.caption("The misclassified images with the highest loss, confidently wrong ones first: often "
               "mislabeled, odd or hard.")  # fmt: skip
    result_gallery(wrong, positive, card_actions(fixes, "wrong"))

st.subheader("Download", anchor=False)
st.markdown(f"**Per-image results** at threshold {threshold:.2f}")
slug = "test" if data is None else Path(data[0]).name or "folder"
st.download_button("Download results (CSV)", data=cur.results_csv(), mime="text/csv",
                   file_name=f"{run.id}-{slug}-results.csv", icon=":material/download:")
st.caption(f"Columns: path, true, predicted, probability (of {pos}).")

st.subheader("Use this model elsewhere", anchor=False)
st.caption("As on the Predict page: an ONNX file that gives the same answers, and a prediction server.")
export_panel(run, ckpt, keys.EVAL_EXPORT)
st.page_link("pages/predict.py", label="Next: predict new images with this model",
             icon=":material/image_search:")
