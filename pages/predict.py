"""Predict page: the trained model on new images (uploads, webcam shot, folder), with Grad-CAM heat maps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from bincls import BinclsError
from bincls.inference.batch_predict import FULL_VIEWS, class_counts
from bincls.inference.predict import thumbnail_data_uri
from pages.support.shared import keys, loaders, trust_views
from pages.support.shared.export_panel import export_panel
from pages.support.shared.formatting import as_text, code, md
from pages.support.shared.messages import show_error, stop_on_error
from pages.support.shared.state import keep_widget_state, require_app
from pages.support.shared.widgets import checkpoint_runs_or_stop, pick_run

require_app(__file__)

ss = st.session_state


def card(item, names: list[str], heatmaps: bool) -> None:
    p = item.prediction
    with st.container(border=True):
        trust_views.headline(p)  # "Unlike the training images" first, when it is
        cols = st.columns(2 if heatmaps else 1)
        cols[0].image(item.image, caption="image", width="stretch")
        if heatmaps:
            cols[1].image(item.overlay(), caption=f"evidence for {md(p.class_name)}", width="stretch")
        p1 = float(p.p_class1)
        st.progress(1 - p1, text=f"{md(names[0])}: {1 - p1:.1%}")
        st.progress(p1, text=f"{md(names[1])}: {p1:.1%}")


def results_table(results: list, names: list[str]) -> pd.DataFrame:
    rows = []
    for item in results:
        p = item.prediction
        rows.append({
            "Image": thumbnail_data_uri(item.image, 64) if item.image is not None else None,
            "File": p.source,
            "Predicted": trust_views.predicted_cell(p),
            "Probability": p.probability,
            f"P({names[1]})": p.p_class1,
            **trust_views.ood_cells(p),
            "Problem": p.error or "",
        })  # fmt: skip
    return pd.DataFrame(rows)


def show_results(results: list, names: list[str], heatmaps: bool, source: str, label: str | None = None):
    if not results:
        return
    bad = [r.prediction for r in results if r.prediction.error]
    good = [r for r in results if not r.prediction.error]
    for p in bad[:8]:
        st.error(f"**{md(Path(p.source).name)}**: {as_text(p.error)}. The file was skipped.",
                 icon=":material/broken_image:")
    if len(bad) > 8:
        st.error(f"…and {len(bad) - 8} more files could not be read: see the Problem column of the table.")
    if good and heatmaps:
        st.caption("The heat maps (Grad-CAM) show where the evidence for the **predicted** class lies: red = "
                   "strong, blue = little. They show what the model looked at, not whether it is right.")
    batch = len(results) > 4
    if batch:  # a batch: the table first, then cards for the first images
        table_of(results, names, source, label or source, len(good))
    shown = good[: FULL_VIEWS]
    per_row = 3 if batch else 2
    if batch and shown:
        st.markdown(f"**The first {len(shown)} images**, with what the model looked at")
    for start in range(0, len(shown), per_row):
        cols = st.columns(per_row)
        for col, item in zip(cols, shown[start : start + per_row]):
            with col:
                card(item, names, heatmaps)
    if 1 < len(results) <= 4:
        table_of(results, names, source, label or source, len(good))


def table_of(results: list, names: list[str], source: str, label: str, good: int) -> None:
    table = results_table(results, names)
    counts = class_counts([r.prediction for r in results], names)
    per_class = " · ".join(f"**{md(n)}**: {c:,}" for n, c in counts.items() if n != "unreadable" or c)
    if unlike := sum(1 for r in results if r.prediction.ood):
        per_class += f" · **{unlike:,} {trust_views.UNLIKE.lower()}**, whatever class they got"
    st.markdown(f"**All {len(results):,} files** ({good:,} predicted): {per_class}. Click a column header to "
                "sort.")  # fmt: skip
    st.dataframe(
        table, hide_index=True, width="stretch", row_height=70, height=min(40 + 70 * len(table), 600),
        column_config={
            "Image": st.column_config.ImageColumn("Image", width="small"),
            "File": st.column_config.TextColumn("File", width="medium"),
            "Problem": st.column_config.TextColumn("Problem", width="medium"),
            "Probability": st.column_config.ProgressColumn(
                "Probability", help="of the predicted class", min_value=0.0, max_value=1.0,
                format="percent"),
            f"P({names[1]})": st.column_config.NumberColumn(format="%.3f"),
            **trust_views.OOD_COLUMNS,
        },
    )  # fmt: skip
    csv = table.drop(columns=["Image"]).to_csv(index=False).encode("utf-8")
    st.download_button("Download predictions (CSV)", data=csv, file_name=f"predictions-{label}.csv",
                       mime="text/csv", icon=":material/download:", key=f"download_{source}")


# Page -------------------------------------------------------------------------------------------------
st.title("Predict")
st.caption("Give the model new images: it says which class, how sure it is, and where it looked.")
keep_widget_state([keys.PREDICT_HEATMAPS, keys.PREDICT_CAMERA_ON, keys.PREDICT_FOLDER_INPUT])

candidates = checkpoint_runs_or_stop()

top = st.columns([3, 2, 3], vertical_alignment="bottom")
with top[0]:
    run = pick_run(keys.PREDICT_RUN, candidates)
with stop_on_error():
    predictor = loaders.predictor(run)
names = predictor.class_names
ss.setdefault(keys.PREDICT_HEATMAPS, True)
heatmaps = top[1].toggle("Heat maps (Grad-CAM)", key=keys.PREDICT_HEATMAPS,
                         help="Also compute where the model found its evidence; a little slower.")
origin = "saved on the Evaluate page" if run.config().get("threshold") is not None else "default"
neg, pos = (md(n) for n in names)
top[2].caption(f"Classes: **{neg}** / **{pos}** · says {pos} when P({pos}) ≥ "
               f"**{predictor.threshold:.2f}** ({origin}) · model {predictor.ckpt['model_config']['name']}, "
               f"{predictor.preprocess.img_size} px · {trust_views.detector_note(predictor)}")

with st.expander("Use this model elsewhere: ONNX file (fp32 or INT8) and a prediction server",
                 icon=":material/output:"):  # fmt: skip
    export_panel(run, predictor.checkpoint, keys.PREDICT_EXPORT)

upload_tab, camera_tab, folder_tab = st.tabs(["Upload images", "Webcam", "Folder"])

with upload_tab:
    files = st.file_uploader(
        "Drop one or many images", accept_multiple_files=True, key=keys.PREDICT_UPLOADS,
        help="JPEG, PNG, WebP, BMP, GIF, TIFF. Each file is checked; a bad one is reported and the others "
             "are still predicted.",
    )  # fmt: skip
    if files:
        items = [(f.name, f.getvalue()) for f in files]
        try:
            show_results(loaders.predict_uploads(run, items, heatmaps), names, heatmaps, "uploads")
        except BinclsError as exc:
            show_error(exc)

with camera_tab:
    st.toggle("Use the webcam", key=keys.PREDICT_CAMERA_ON,
              help="The browser asks for the camera only once this is on.")
    if ss.get(keys.PREDICT_CAMERA_ON):
        shot = st.camera_input("Take a photo", key=keys.PREDICT_CAMERA)
        if shot is not None:
            try:
                results = loaders.predict_uploads(run, [("webcam shot", shot.getvalue())], heatmaps)
                show_results(results, names, heatmaps, "webcam")
            except BinclsError as exc:
                show_error(exc)

with folder_tab:
    with st.form("predict_folder_form", border=False):
        c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
        c1.text_input("Folder of images on this computer (subfolders included)",
                      key=keys.PREDICT_FOLDER_INPUT, placeholder="/path/to/images")
        if c2.form_submit_button("Predict folder", icon=":material/play_arrow:", width="stretch"):
            ss[keys.PREDICT_FOLDER] = (ss.get(keys.PREDICT_FOLDER_INPUT) or "").strip() or None
    folder = ss.get(keys.PREDICT_FOLDER)
    if folder:
        try:
            results = loaders.predict_folder(run, folder, heatmaps)
        except BinclsError as exc:
            show_error(exc)
        else:
            if not results:
                st.info(f"{code(folder)} holds no files.", icon=":material/info:")
            show_results(results, names, heatmaps, "folder", Path(folder).name or "folder")

st.page_link("pages/runs.py", label="Next: compare your runs, name them, download a model",
             icon=":material/history:")
