"""Plotly figures in one style (`style`: size, margins, legend), for the data, the preview, training
curves and the comparison of runs. The Evaluate page's figures are in `evaluation_charts`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from bincls.runs.summary import epoch_records

CLASS_COLOURS = ("#1f77b4", "#ff7f0e")
RGB = (("R", "#d62728"), ("G", "#2ca02c"), ("B", "#1f77b4"))
TRAIN_COLOR, VAL_COLOR, STEP_COLOR, CHANCE_COLOR = "#2563eb", "#ea580c", "#93c5fd", "#9ca3af"
# Distinct colours, one per compared run and the same in both charts.
RUN_COLORS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777",
              "#4b5563")  # fmt: skip
RUN_DASHES = ("solid", "dash", "dot", "dashdot")
MAX_STEP_POINTS = 3000  # per-step loss points drawn; longer runs are thinned evenly
HISTOGRAM_BINS = 60
SCATTER_CAP = 5000  # points per class in the size scatter


def dark() -> bool:
    """The browser shows the dark theme (the app follows the system's preference, .streamlit/config.toml)."""
    theme = getattr(st.context, "theme", None)
    return getattr(theme, "type", None) == "dark"


def ink(light: str, dark_colour: str) -> str:
    """A colour for lines and outlines that must stand out from the background: one per theme (Streamlit
    restyles the charts' backgrounds, grids and texts itself)."""
    return dark_colour if dark() else light


def pad_colour() -> tuple[int, int, int]:
    """The colour a thumbnail is padded to a square with: the theme's secondary background."""
    return (28, 34, 48) if dark() else (243, 245, 249)


def style(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 340,
          legend: str = "top") -> go.Figure:  # fmt: skip
    """Every chart's title, axis titles, size, margins and legend: a horizontal legend above the plot
    (`legend="top"`), or below it ("bottom", for square charts whose top holds a long title)."""
    place = {"top": {"yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0},
             "bottom": {"yanchor": "top", "y": -0.25, "xanchor": "left", "x": 0}}[legend]  # fmt: skip
    fig.update_layout(
        title={"text": title}, height=height, margin={"l": 10, "r": 10, "t": 70 if legend == "top" else 60,
                                                      "b": 10},
        legend={"orientation": "h", **place},
    )  # fmt: skip
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def as_share(fig: go.Figure) -> go.Figure:
    """A y axis of shares (accuracy), 0 to 100%."""
    return fig.update_yaxes(range=[0, 1.02], tickformat=".0%")


# Data and Preview ----------------------------------------------------------------------------------------
def class_balance(names: list[str], found: list[int], usable: list[int]) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(x=names, y=found, name="found", marker_color="#c7c7c7", text=found, textposition="outside")
    fig.add_bar(x=names, y=usable, name="usable", marker_color=CLASS_COLOURS[0], text=usable,
                textposition="outside")
    fig.update_layout(barmode="group", yaxis_range=[0, max(found + [1]) * 1.15])
    return style(fig, "Images per class", "Class", "Images")


def image_sizes(df: pd.DataFrame, names: list[str]) -> go.Figure:
    """One point per file (`df`: width, height, class, file), at most SCATTER_CAP per class."""
    fig = go.Figure()
    for i, name in enumerate(names):
        part = df[df["class"] == name]
        if len(part) > SCATTER_CAP:
            part = part.sample(SCATTER_CAP, random_state=0)
        fig.add_scatter(
            x=part["width"], y=part["height"], mode="markers", name=name, text=part["file"],
            marker={"color": CLASS_COLOURS[i], "size": 7, "opacity": 0.7},
            hovertemplate="%{text}<br>%{x} x %{y} px<extra>" + name + "</extra>",
        )  # fmt: skip
    return style(fig, "Image size per file", "Width (px)", "Height (px)", 420)


def channel_histogram(values: np.ndarray, title: str, x_title: str, lo: float, hi: float) -> go.Figure:
    """Per-channel histograms of a [B, 3, H, W] batch between `lo` and `hi`."""
    fig = go.Figure()
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for c, (name, colour) in enumerate(RGB):
        counts, _ = np.histogram(values[:, c].ravel(), bins=edges)
        fig.add_scatter(x=centres, y=counts, name=name, mode="lines", line={"color": colour, "shape": "hvh"})
    return style(fig, title, x_title, "Pixels", 320)


# Training curves -----------------------------------------------------------------------------------------
def _epoch_axis(fig: go.Figure, x_max: float) -> go.Figure:
    # The axis spans the epochs asked for, so a live curve grows across it; ticks on whole epochs.
    x_data = max((max(t.x) for t in fig.data if t.x), default=0)
    x_end = max(x_max, x_data, 1)
    fig.update_layout(showlegend=True, hovermode="x unified")
    return fig.update_xaxes(range=[0, x_end + 0.1 * max(1, x_end / 10)], dtick=1 if x_end <= 12 else None)


def _train_colour() -> str:
    return ink(TRAIN_COLOR, "#60a5fa")


def loss_curves(records: list[dict], x_max: float) -> go.Figure:
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = epoch_records(records)
    if len(steps) > MAX_STEP_POINTS:
        steps = steps[:: len(steps) // MAX_STEP_POINTS + 1]
    fig = go.Figure()
    fig.add_scatter(
        x=[r["epoch"] - 1 + r["step"] / max(r["steps_per_epoch"], 1) for r in steps],
        y=[r["loss"] for r in steps],
        mode="lines", name="train loss per step", line={"width": 1, "color": STEP_COLOR},
    )  # fmt: skip
    fig.add_scatter(x=[r["epoch"] for r in epochs], y=[r.get("train_loss") for r in epochs],
                    mode="lines+markers", name="train loss (epoch)", line={"color": _train_colour()})
    fig.add_scatter(x=[r["epoch"] for r in epochs], y=[r.get("val_loss") for r in epochs],
                    mode="lines+markers", name="val loss", line={"color": VAL_COLOR})
    return _epoch_axis(style(fig, "Loss", "epoch", "loss (BCE)"), x_max)


def accuracy_curves(records: list[dict], x_max: float) -> go.Figure:
    epochs = epoch_records(records)
    fig = go.Figure()
    fig.add_scatter(x=[r["epoch"] for r in epochs], y=[r.get("train_accuracy") for r in epochs],
                    mode="lines+markers", name="train accuracy", line={"color": _train_colour()})
    fig.add_scatter(x=[r["epoch"] for r in epochs], y=[r.get("val_accuracy") for r in epochs],
                    mode="lines+markers", name="val accuracy", line={"color": VAL_COLOR})
    return as_share(_epoch_axis(style(fig, "Accuracy", "epoch", "accuracy"), x_max))


def run_comparison(curves: list[tuple[str, list[dict]]]) -> tuple[go.Figure, go.Figure]:
    """(validation loss, validation accuracy) of several runs, one colour per run: [(name, epoch records)]."""
    loss, acc = go.Figure(), go.Figure()
    for i, (name, epochs) in enumerate(curves):
        x = [r["epoch"] for r in epochs]
        dash = RUN_DASHES[i // len(RUN_COLORS) % len(RUN_DASHES)]  # past the palette: dashed
        line = {"mode": "lines+markers", "name": name,
                "line": {"color": RUN_COLORS[i % len(RUN_COLORS)], "dash": dash}}  # fmt: skip
        loss.add_scatter(x=x, y=[r.get("val_loss") for r in epochs], **line)
        acc.add_scatter(x=x, y=[r.get("val_accuracy") for r in epochs], **line)
    for fig in (loss, acc):
        fig.update_layout(showlegend=True, hovermode="x unified")
        fig.update_xaxes(rangemode="tozero")
    # The legend below the plot: run names are long, and above it they ran over the chart's title.
    below = {"height": 420, "legend": "bottom"}
    return (style(loss, "Validation loss", "epoch", "val loss (BCE)", **below),
            as_share(style(acc, "Validation accuracy", "epoch", "val accuracy", **below)))  # fmt: skip
