"""The Evaluate page's figures: confusion matrix, ROC and precision-recall curves, calibration."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from bincls.inference.calibration import ECE_BINS
from bincls.inference.evaluate import calibration, pr_curve, roc_curve
from pages.support.shared.charts import CHANCE_COLOR, ink, style
from pages.support.shared.formatting import chart_text, num

AXIS = [-0.04, 1.06]  # probability axes, with room for markers at 0 and 1
MARK_FILL = "#f59e0b"  # the current threshold's point, outlined in the text colour of the theme
HEIGHT = 400


def _mark() -> dict:
    return {"size": 13, "color": MARK_FILL, "line": {"width": 1, "color": ink("#111827", "#e5e7eb")}}


def _chance(fig: go.Figure, y: list[float], name: str) -> None:
    fig.add_scatter(x=[0, 1], y=y, mode="lines", line={"dash": "dot", "color": CHANCE_COLOR}, name=name,
                    hoverinfo="skip")


def _probability_axes(fig: go.Figure) -> go.Figure:
    fig.update_xaxes(range=AXIS)
    return fig.update_yaxes(range=AXIS)


def confusion_matrix(cm: list[list[int]], names: list[str], selected: tuple[str, str] | None) -> go.Figure:
    """Counts and row shares; clickable cells (a transparent marker on each); the `selected` cell outlined.
    The axes show the names as `chart_text` writes them (`views.selected_cell` reads a click back)."""
    names = [chart_text(n) for n in names]
    selected = tuple(chart_text(n) for n in selected) if selected else None
    z = np.array(cm)
    # The count and its share of the row (the true class): no class name in the cell, whose width on a
    # phone (about 80 px) a long name overflows into the next cell.
    text = [[f"<b>{z[i, j]}</b><br>{z[i, j] / max(z[i].sum(), 1):.0%}" for j in range(2)] for i in range(2)]
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
    style(fig, "Confusion matrix (click a cell to see its images)", "predicted class",
          "true class (share of its images)", HEIGHT, legend="bottom")
    fig.update_layout(clickmode="event+select", dragmode=False)
    fig.update_xaxes(side="bottom", showgrid=False)
    return fig.update_yaxes(autorange="reversed", showgrid=False)


def roc(ev, m: dict) -> go.Figure:
    curve = roc_curve(ev)
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    fig = go.Figure()
    _chance(fig, [0, 1], "chance")
    fig.add_scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", line={"shape": "hv", "width": 3},
                    name="ROC", customdata=curve["threshold"],
                    hovertemplate="FPR %{x:.2f}, TPR %{y:.2f}<br>threshold %{customdata:.3f}<extra></extra>")
    fig.add_scatter(x=[fp / max(fp + tn, 1)], y=[tp / max(tp + fn, 1)], mode="markers",
                    name=f"t = {m['threshold']:.2f}", marker=_mark())
    style(fig, f"ROC curve (AUC {num(m['auroc'])})", "false positive rate", "true positive rate (recall)",
          HEIGHT, legend="bottom")
    return _probability_axes(fig)


def precision_recall(ev, m: dict, positive: str) -> go.Figure:
    positive = chart_text(positive)
    curve = pr_curve(ev)
    base = float(np.mean(ev.labels))
    fig = go.Figure()
    _chance(fig, [base, base], f"chance ({base:.0%} {positive})")
    fig.add_scatter(x=curve["recall"], y=curve["precision"], mode="lines", line={"shape": "vh", "width": 3},
                    name="precision-recall", customdata=curve["threshold"],
                    hovertemplate="recall %{x:.2f}, precision %{y:.2f}<br>threshold %{customdata:.3f}"
                                  "<extra></extra>")  # fmt: skip
    fig.add_scatter(x=[m["recall"]], y=[m["precision"]], mode="markers", name=f"t = {m['threshold']:.2f}",
                    marker=_mark())
    style(fig, f"Precision-recall curve (positive class: {positive})", f"recall (share of {positive} found)",
          f"precision (share right when saying {positive})", HEIGHT, legend="bottom")
    return _probability_axes(fig)


def calibration_curve(ev, positive: str) -> go.Figure:
    """Reliability diagram of the probabilities before and after the checkpoint's calibration, with
    the expected calibration error of each (the bins the engine's ECE uses)."""
    positive = chart_text(positive)
    fig = go.Figure()
    _chance(fig, [0, 1], "perfectly calibrated")
    eces = {}
    for calibrated, name, colour, dash in ((False, "before calibration", "#9ca3af", "dash"),
                                           (True, "after", ink("#2563eb", "#60a5fa"), "solid")):  # fmt: skip
        table, eces[calibrated] = calibration(ev, bins=ECE_BINS, calibrated=calibrated)
        used = table[table["count"] > 0]
        fig.add_scatter(
            x=used["mean_probability"], y=used["observed"], mode="lines+markers",
            name=f"{name} (ECE {eces[calibrated]:.3f})", line={"color": colour, "dash": dash},
            marker={"size": 7 + 13 * np.sqrt(used["count"] / used["count"].max()), "color": colour},
            customdata=np.stack([used["count"], used["bin_low"], used["bin_high"]], axis=-1),
            hovertemplate=f"{name}<br>P %{{customdata[1]:.2f}}–%{{customdata[2]:.2f}}: %{{customdata[0]}} "
                          "images<br>mean predicted %{x:.2f}, observed %{y:.2f}<extra></extra>",
        )  # fmt: skip
    style(fig, f"Calibration: error {eces[False]:.3f} before, {eces[True]:.3f} after",
          f"predicted P({positive}), binned", f"observed share of {positive}", HEIGHT, legend="bottom")
    return _probability_axes(fig)
