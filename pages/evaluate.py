"""Evaluate page: how good is a trained model on images it never saw, and at which decision threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import ImageOps

from bincls import BinclsError
from bincls.inference.evaluate import (
    at_threshold,
    both_classes,
    calibration,
    cell_images,
    find_checkpoint,
    most_wrong,
    pr_curve,
    roc_curve,
    save_threshold,
    saved_threshold,
)
from pages import common

common.require_app(__file__)

ss = st.session_state
CHART_MARGIN = {"l": 10, "r": 10, "t": 60, "b": 10}
AXIS = [-0.04, 1.06]  # probability axes, with room for markers at 0 and 1
MARK = {"size": 13, "color": "#f59e0b", "line": {"width": 1, "color": "#111827"}}  # the current threshold
GALLERY_COLUMNS = 6
FORMULA_ROWS = [  # metric, formula (LaTeX), in words; {pos}/{neg} are the class names
    ("Accuracy", r"$\dfrac{TP + TN}{TP + TN + FP + FN}$", "share of all images classified right"),
    ("Precision", r"$\dfrac{TP}{TP + FP}$", "of the images called {pos}, the share that are {pos}"),
    ("Recall", r"$\dfrac{TP}{TP + FN}$", "of the {pos}, the share the model finds (true positive rate)"),
    ("F1", r"$2\,\dfrac{\text{precision} \cdot \text{recall}}{\text{precision} + \text{recall}}$",
     "one number that is high only when both are"),
    ("ROC-AUC", r"$\int_0^1 \text{TPR}\;d\,\text{FPR}$, with $\text{FPR} = \dfrac{FP}{FP + TN}$",
     "chance that a random {pos} scores above a random {neg}; does not depend on $t$"),
    ("Loss", r"$-\dfrac{1}{n}\sum_i \big[y_i \log p_i + (1 - y_i)\log(1 - p_i)\big]$",
     "binary cross-entropy of the probabilities $p_i$ (labels $y_i$); does not depend on $t$"),
]


def formulas(pos: str, neg: str) -> str:
    rows = "\n".join(f"| {name} | {tex} | {words.format(pos=pos, neg=neg)} |"
                     for name, tex, words in FORMULA_ROWS)
    return (
        f"An image counts as **{pos}** (the *positive* class) when the model's $P(\\text{{{pos}}}) \\ge t$, "
        f"the threshold. Then **TP** = {pos} called {pos}, **FP** = {neg} called {pos}, "
        f"**TN** = {neg} called {neg}, **FN** = {pos} called {neg}.\n\n"
        f"| Metric | Formula | In words |\n|---|---|---|\n{rows}\n\n"
        f"Moving $t$ up makes the model say {pos} less often: precision usually rises, recall falls. "
        "All metrics are computed by [torchmetrics](https://lightning.ai/docs/torchmetrics/)."
    )


def show_message() -> None:
    msg = ss.pop(common.EVAL_MESSAGE, None)
    if msg:
        kind, text = msg
        (st.success if kind == "success" else st.error)(text)


def fmt(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def metrics_row(m: dict, base: dict | None) -> None:
    cols = st.columns(6)
    items = [("Accuracy", "accuracy"), ("Precision", "precision"), ("Recall", "recall"), ("F1", "f1"),
             ("ROC-AUC", "auroc"), ("Loss (BCE)", "loss")]
    for col, (label, key) in zip(cols, items):
        delta = None
        moves = base is not None and key not in ("auroc", "loss")
        if moves and np.isfinite(m[key]) and np.isfinite(base[key]):
            d = m[key] - base[key]
            delta = f"{d:+.3f} vs saved" if abs(d) > 1e-9 else None
        col.metric(label, fmt(m[key]), delta=delta)


def confusion_figure(cm: list[list[int]], names: list[str], selected: tuple[str, str] | None) -> go.Figure:
    z = np.array(cm)
    text = [[f"<b>{z[i, j]}</b><br>{z[i, j] / max(z[i].sum(), 1):.0%} of {names[i]}" for j in range(2)]
            for i in range(2)]
    fig = go.Figure(go.Heatmap(
        z=z.tolist(), x=names, y=names, text=text, texttemplate="%{text}", textfont={"size": 16},
        colorscale="Blues", showscale=False, hoverinfo="skip", zmin=0,
    ))  # fmt: skip
    # Heat-map cells do not report clicks to Streamlit: a transparent marker on each cell does.
    xs, ys, counts = zip(*[(names[j], names[i], int(z[i, j])) for i in range(2) for j in range(2)])
    fig.add_scatter(
        x=xs, y=ys, mode="markers", customdata=counts, showlegend=False,
        marker={"size": 90, "symbol": "square", "color": "rgba(0,0,0,0)"},
        selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 1}},
        hovertemplate="true %{y}, predicted %{x}: %{customdata} images<br>click to see them<extra></extra>",
    )  # fmt: skip
    if selected:
        j, i = names.index(selected[1]), names.index(selected[0])
        fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5,
                      line={"color": "#f59e0b", "width": 4})
    fig.update_layout(title={"text": "Confusion matrix (click a cell to see its images)"}, height=400,
                      margin=CHART_MARGIN, clickmode="event+select", dragmode=False)
    fig.update_xaxes(title_text="predicted class", side="bottom", showgrid=False)
    fig.update_yaxes(title_text="true class", autorange="reversed", showgrid=False)
    return fig


def remember_cell() -> None:
    """Chart callback: a click picks a cell, a double click (an empty selection) clears it.

    The cell is kept in its own key: the chart's selection is reset whenever the figure changes (when
    the threshold moves, or the outline of the picked cell is drawn), and the images should stay.
    """
    state = ss.get(common.EVAL_MATRIX)
    points = ((state or {}).get("selection") or {}).get("points") or []
    ss[common.EVAL_CELL] = (points[0].get("y"), points[0].get("x")) if points else None


def selected_cell(names: list[str]) -> tuple[str, str] | None:
    cell = ss.get(common.EVAL_CELL)
    return tuple(cell) if cell and cell[0] in names and cell[1] in names else None


def roc_figure(ev, m: dict) -> go.Figure:
    roc = roc_curve(ev)
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#9ca3af"},
                    name="chance", hoverinfo="skip")
    fig.add_scatter(x=roc["fpr"], y=roc["tpr"], mode="lines", line={"shape": "hv", "width": 3}, name="ROC",
                    customdata=roc["threshold"],
                    hovertemplate="FPR %{x:.2f}, TPR %{y:.2f}<br>threshold %{customdata:.3f}<extra></extra>")
    fig.add_scatter(x=[fp / max(fp + tn, 1)], y=[tp / max(tp + fn, 1)], mode="markers",
                    name=f"t = {m['threshold']:.2f}", marker=MARK)
    fig.update_layout(title={"text": f"ROC curve (AUC {fmt(m['auroc'])})"}, height=400, margin=CHART_MARGIN,
                      legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(title_text="false positive rate", range=AXIS)
    fig.update_yaxes(title_text="true positive rate (recall)", range=AXIS)
    return fig


def pr_figure(ev, m: dict, positive: str) -> go.Figure:
    pr = pr_curve(ev)
    base = float(np.mean(ev.labels))
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[base, base], mode="lines", line={"dash": "dot", "color": "#9ca3af"},
                    name=f"chance ({base:.0%} {positive})", hoverinfo="skip")
    fig.add_scatter(x=pr["recall"], y=pr["precision"], mode="lines", line={"shape": "vh", "width": 3},
                    name="precision-recall", customdata=pr["threshold"],
                    hovertemplate="recall %{x:.2f}, precision %{y:.2f}<br>threshold %{customdata:.3f}"
                                  "<extra></extra>")  # fmt: skip
    fig.add_scatter(x=[m["recall"]], y=[m["precision"]], mode="markers", name=f"t = {m['threshold']:.2f}",
                    marker=MARK)
    fig.update_layout(title={"text": f"Precision-recall curve (positive class: {positive})"}, height=400,
                      margin=CHART_MARGIN, legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(title_text=f"recall (share of {positive} found)", range=AXIS)
    fig.update_yaxes(title_text=f"precision (share right when saying {positive})", range=AXIS)
    return fig


def calibration_figure(ev, positive: str) -> go.Figure:
    table, ece = calibration(ev, bins=10)
    used = table[table["count"] > 0]
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#9ca3af"},
                    name="perfectly calibrated", hoverinfo="skip")
    fig.add_scatter(
        x=used["mean_probability"], y=used["observed"], mode="lines+markers", name="model",
        marker={"size": 7 + 13 * np.sqrt(used["count"] / used["count"].max())},
        customdata=np.stack([used["count"], used["bin_low"], used["bin_high"]], axis=-1),
        hovertemplate="P %{customdata[1]:.1f}–%{customdata[2]:.1f}: %{customdata[0]} images<br>"
                      "mean predicted %{x:.2f}, observed %{y:.2f}<extra></extra>",
    )  # fmt: skip
    fig.update_layout(title={"text": f"Calibration (expected calibration error {ece:.3f})"}, height=400,
                      margin=CHART_MARGIN, legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(title_text=f"predicted P({positive}), binned", range=AXIS)
    fig.update_yaxes(title_text=f"observed share of {positive}", range=AXIS)
    return fig


def gallery(rows, positive: str) -> None:
    cols = st.columns(GALLERY_COLUMNS)
    for k, row in enumerate(rows.itertuples(index=False)):
        with cols[k % GALLERY_COLUMNS]:
            thumb = common.thumbnail(row.path, 256, common.file_stamp(row.path))
            if thumb is not None:  # padded to a square, so the captions of a row line up
                st.image(ImageOps.pad(thumb, (256, 256), color=(243, 245, 249)), width="stretch")
            mark = ":green[✔ right]" if row.true == row.predicted else ":red[✘ wrong]"
            st.markdown(f"{mark}: true **{row.true}**, said **{row.predicted}**  \n"
                        f"P({positive}) = {row.probability:.3f} · loss {row.loss:.2f}")
            path = Path(row.path)
            st.caption(f"{path.parent.name}/{path.name}", help=str(path))


def export_panel(run, ckpt: Path) -> None:
    from bincls.inference.export import export_metadata, export_onnx

    onnx = ckpt.with_suffix(".onnx")
    fresh = onnx.is_file() and common.file_stamp(onnx) >= common.file_stamp(ckpt)
    st.markdown("**Export the model** (ONNX: runs without PyTorch, e.g. with onnxruntime)")
    if not fresh:
        if st.button("Export to ONNX", icon=":material/output:"):
            try:
                with st.spinner("Exporting to ONNX (can take half a minute for large models)…"):
                    export_onnx(ckpt)
                ss[common.EVAL_MESSAGE] = ("success", f"Exported to {onnx} (and {onnx.name}.json beside it).")
            except BinclsError as exc:
                ss[common.EVAL_MESSAGE] = ("error", str(exc))
            st.rerun()
        return
    import json

    from bincls.models.checkpoint import read_checkpoint

    info = export_metadata(read_checkpoint(ckpt), saved_threshold(run), onnx.name)
    meta = json.dumps(info, indent=1, ensure_ascii=False) + "\n"
    c1, c2 = st.columns(2)
    c1.download_button(f"Download {onnx.name}", data=onnx.read_bytes(), file_name=f"{run.id}-{onnx.name}",
                       mime="application/octet-stream", icon=":material/download:", width="stretch")
    c2.download_button(f"Download {onnx.name}.json", data=meta, file_name=f"{run.id}-{onnx.name}.json",
                       mime="application/json", icon=":material/download:", width="stretch")
    size = info["input"]["preprocessing"]["img_size"]
    st.caption(f"Written beside the checkpoint: `{onnx}`. The JSON gives the class names, the threshold "
               f"and the preprocessing (input NCHW float32, RGB, resized to {size} x {size} px, normalized; "
               "output one logit, sigmoid gives the probability of the second class).")


# Page -------------------------------------------------------------------------------------------------
st.title("Evaluate")
st.caption("How good is the model on images it never saw during training, and which threshold suits you?")
common.keep_widget_state([common.EVAL_SOURCE, common.EVAL_FOLDER, common.EVAL_THRESHOLD])
show_message()

candidates = common.checkpoint_runs_or_stop()

top = st.columns([3, 2, 3], vertical_alignment="bottom")
with top[0]:
    run = common.pick_run(common.EVAL_RUN, candidates)
with top[1]:
    ss.setdefault(common.EVAL_SOURCE, "test")
    source = st.radio("Evaluate on", ["test", "folder"], key=common.EVAL_SOURCE, horizontal=True,
                      format_func={"test": "Its test split", "folder": "Another folder"}.get)
if problem := common.config_problem(run):
    st.warning(f"{problem} The evaluation below uses the checkpoint, which holds what it needs.",
               icon=":material/warning:")
data = None
if source == "folder":
    with top[2]:
        folder = st.text_input("Folder with one subfolder per class", key=common.EVAL_FOLDER,
                               placeholder="/path/to/folder holding the class folders")
    if not folder.strip():
        names = (run.config().get("class_names") or [])
        st.info("Give a folder that holds two class folders named like the run's classes"
                + (f" ({', '.join(names)})" if names else "") + ".", icon=":material/folder_open:")
        st.stop()
    data = [folder.strip()]

try:
    ckpt, _ = find_checkpoint(run.path)
    ev = common.evaluation(run, data)
except BinclsError as exc:
    common.show_error(exc)
    st.stop()

names = ev.class_names
negative, positive = names
saved = saved_threshold(run)
if ss.get(common.EVAL_THRESHOLD_FOR) != run.id or common.EVAL_THRESHOLD not in ss:
    ss[common.EVAL_THRESHOLD] = saved
    ss[common.EVAL_THRESHOLD_FOR] = run.id
for note in ev.notes:
    st.info(note, icon=":material/info:")

left, mid, right = st.columns([5, 1.4, 1.2], vertical_alignment="bottom")
threshold = left.slider(
    f"Decision threshold: say **{positive}** when P({positive}) ≥ threshold", 0.0, 1.0, step=0.01,
    key=common.EVAL_THRESHOLD,
    help="Moving it recomputes metrics, confusion matrix and galleries from the saved predictions.",
)
changed = abs(threshold - saved) > 1e-9
if mid.button("Save threshold", icon=":material/save:", disabled=not changed, width="stretch",
              help=f"Store it in the run's config.json; Predict uses it. Saved now: {saved:.2f}"):
    try:
        save_threshold(run.path, threshold)
        where = run.path / "config.json"
        ss[common.EVAL_MESSAGE] = ("success", f"Threshold {threshold:.2f} saved in {where}; Predict uses it.")
    except BinclsError as exc:
        ss[common.EVAL_MESSAGE] = ("error", str(exc))
    st.rerun()
with right.popover("Formulas", icon=":material/function:", width="stretch"):
    st.markdown(formulas(positive, negative))

cur = at_threshold(ev, threshold)
m = cur.metrics
base = at_threshold(ev, saved).metrics if changed else None
metrics_row(m, base)
(tn, fp), (fn, tp) = m["confusion_matrix"]
counts = ev.table["true"].value_counts()
st.caption(
    f"{m['n']} images ({ev.source}: {counts.get(negative, 0)} {negative}, "
    f"{counts.get(positive, 0)} {positive}) · "
    f"threshold {threshold:.2f}{' (saved)' if not changed else f' (saved: {saved:.2f})'} · "
    f"TP {tp} · FP {fp} · TN {tn} · FN {fn} · checkpoint `{Path(ev.checkpoint).name}`"
)

cell = selected_cell(names)
c1, c2 = st.columns(2)
with c1:
    st.plotly_chart(confusion_figure(m["confusion_matrix"], names, cell), key=common.EVAL_MATRIX,
                    on_select=remember_cell, selection_mode="points", config={"displayModeBar": False})
curves = both_classes(ev)
with c2:
    if curves:
        st.plotly_chart(roc_figure(ev, m), config={"displaylogo": False})
    else:
        st.info("ROC and precision-recall curves need images of both classes.", icon=":material/info:")
if curves:
    c3, c4 = st.columns(2)
    c3.plotly_chart(pr_figure(ev, m, positive), config={"displaylogo": False})
    c4.plotly_chart(calibration_figure(ev, positive), config={"displaylogo": False})
    c4.caption("Images grouped by predicted probability (10 bins): a calibrated model's points sit on the "
               "diagonal. Marker size shows how many images a bin holds.")

if cell:
    rows = cell_images(cur, *cell)
    head, close = st.columns([6, 1], vertical_alignment="bottom")
    head.subheader(f"True {cell[0]}, predicted {cell[1]}: {len(rows)} images", anchor=False)
    if close.button("Hide", icon=":material/close:", width="stretch"):
        ss[common.EVAL_CELL] = None
        st.rerun()
    if rows.empty:
        st.caption("No images in this cell at this threshold.")
    else:
        gallery(rows.head(24), positive)
        if len(rows) > 24:
            st.caption(f"…and {len(rows) - 24} more: download the CSV below for all of them.")
else:
    st.caption("Click a cell of the confusion matrix to see its images here.")

st.subheader("Most wrong", anchor=False)
st.caption("The images with the highest loss: confidently wrong ones first; often mislabeled, odd or hard.")
gallery(most_wrong(cur, k=GALLERY_COLUMNS * 2), positive)

st.subheader("Download", anchor=False)
d1, d2 = st.columns(2)
with d1:
    st.markdown(f"**Per-image results** at threshold {threshold:.2f}")
    slug = "test" if data is None else Path(data[0]).name or "folder"
    st.download_button("Download results (CSV)", data=cur.results_csv(), mime="text/csv",
                       file_name=f"{run.id}-{slug}-results.csv", icon=":material/download:")
    st.caption(f"Columns: path, true, predicted, probability (of {positive}).")
with d2:
    export_panel(run, ckpt)
