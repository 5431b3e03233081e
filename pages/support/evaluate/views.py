"""Pieces of the Evaluate page: the formulas, the metrics row, the confusion-matrix cell picked."""

from __future__ import annotations

import numpy as np
import streamlit as st

from bincls.chance import TIED_STD, chance_verdict
from bincls.runs.summary import summarize
from pages.support.shared import keys, run_pieces
from pages.support.shared.formatting import chart_text, md, num
from pages.support.shared.trust_views import metric_intervals

ss = st.session_state
FORMULA_ROWS = [  # metric, formula (LaTeX), in words; {pos}/{neg} are the class names
    ("Accuracy", r"$\dfrac{TP + TN}{TP + TN + FP + FN}$", "share of all images classified right"),
    ("Balanced accuracy", r"$\dfrac{1}{2}\left(\dfrac{TP}{TP + FN} + \dfrac{TN}{TN + FP}\right)$",
     "the mean of the two classes' recalls: a model that always says the larger class gets 0.5"),
    ("Precision", r"$\dfrac{TP}{TP + FP}$", "of the images called {pos}, the share that are {pos}"),
    ("Recall", r"$\dfrac{TP}{TP + FN}$", "of the {pos}, the share the model finds (true positive rate)"),
    ("F1", r"$2\,\dfrac{\text{precision} \cdot \text{recall}}{\text{precision} + \text{recall}}$",
     "one number that is high only when both are"),
    ("ROC-AUC", r"$\int_0^1 \text{TPR}\;d\,\text{FPR}$, with $\text{FPR} = \dfrac{FP}{FP + TN}$",
     "chance that a random {pos} scores above a random {neg}; does not depend on $t$"),
    ("Loss", r"$-\dfrac{1}{n}\sum_i \big[y_i \log p_i + (1 - y_i)\log(1 - p_i)\big]$",
     "binary cross-entropy of the probabilities $p_i$ (labels $y_i$); does not depend on $t$"),
]  # fmt: skip
METRICS = [("Accuracy", "accuracy"), ("Balanced accuracy", "balanced_accuracy"), ("Precision", "precision"),
           ("Recall", "recall"), ("F1", "f1"), ("ROC-AUC", "auroc"), ("Loss (BCE)", "loss")]  # fmt: skip


def formulas(pos: str, neg: str) -> str:
    """The formulas popover; the class names are escaped once here, and kept out of the LaTeX."""
    pos, neg = md(pos), md(neg)
    rows = "\n".join(f"| {name} | {tex} | {words.format(pos=pos, neg=neg)} |"
                     for name, tex, words in FORMULA_ROWS)  # fmt: skip
    return (
        f"An image counts as **{pos}** (the *positive* class) when the model's P({pos}) $\\ge t$, "
        f"the threshold. Then **TP** = {pos} called {pos}, **FP** = {neg} called {pos}, "
        f"**TN** = {neg} called {neg}, **FN** = {pos} called {neg}.\n\n"
        f"| Metric | Formula | In words |\n|---|---|---|\n{rows}\n\n"
        f"Moving $t$ up makes the model say {pos} less often: precision usually rises, recall falls. "
        "All metrics are computed by [torchmetrics](https://lightning.ai/docs/torchmetrics/) (balanced "
        "accuracy from its confusion matrix)."
    )


def metrics_row(m: dict, base: dict | None) -> None:
    """The metrics at the threshold, with their change against the saved threshold's (`base`), and
    under each its 95% interval: on a few dozen test images a metric is only known to a range."""
    intervals = metric_intervals(m)
    for col, (label, key) in zip(st.columns(len(METRICS)), METRICS):
        delta = None
        moves = base is not None and key not in ("auroc", "loss")
        if moves and np.isfinite(m[key]) and np.isfinite(base[key]):
            d = round(m[key] - base[key], 3)  # as shown: a change below the last digit is no change
            delta = f"{d:+.3f} vs saved" if d != 0 else None
        col.metric(label, num(m[key]), delta=delta)
        col.caption(intervals[key])
    st.caption(
        "In brackets, the 95% interval: where the metric on all images like these probably lies (Wilson "
        "intervals; a bootstrap for ROC-AUC). A narrow one needs many test images; two runs whose "
        "intervals overlap may not really differ (the Runs page can test that)."
    )


def calibration_note(m: dict) -> str:
    """Under the reliability diagram: what calibration did to this model's probabilities."""
    t, b = m.get("temperature", 1.0), round(m.get("logit_bias", 0.0), 2) + 0.0  # + 0.0: no "-0.00"
    how = (
        "Calibration left this model's probabilities as they were (there was no validation split large "
        "enough to fit it on, or fitting did not help there)."
        if abs(t - 1) < 1e-9 and abs(b) < 1e-9
        else f"Calibration divides the model's logit by a temperature of {t:.2f} and adds {b:+.2f}, fitted "
        "on the validation split; the ranking (ROC-AUC) stays the same."
    )
    return ("Images grouped by predicted probability: a calibrated model's points sit on the diagonal; "
            f"marker size shows how many images a bin holds. {how} Expected calibration error "
            f"{num(m.get('ece_uncalibrated'))} before, {num(m.get('ece'))} after.")


def tied(ev) -> bool:
    """The model gave every image (nearly) the same probability: no curve means anything."""
    return (ev.metrics.get("p_std") or 0.0) < TIED_STD if ev.metrics.get("n") else False


def chance_warnings(run, ev) -> None:
    """A run that learned nothing on validation, and results on these images no better than guessing."""
    summary = summarize(run)
    if run_pieces.learned_nothing_warning(summary):
        return
    (tn, fp), (fn, tp) = ev.metrics["confusion_matrix"]
    verdict = chance_verdict(ev.metrics.get("auroc"), ev.metrics.get("p_std"), tn + fp, fn + tp)
    if verdict:
        st.warning(f"On these {ev.metrics['n']} images the model is no better than guessing: {verdict}. "
                   "Check that the folders hold what their names say, or train longer, with more images, or "
                   "from pretrained weights (the Train page's Fast recipe).", icon=":material/warning:")


def remember_cell() -> None:
    """Chart callback: a click picks a cell, a double click (an empty selection) clears it.

    The cell is kept in its own key: the chart's selection is reset whenever the figure changes (when
    the threshold moves, or the outline of the picked cell is drawn), and the images should stay.
    """
    state = ss.get(keys.EVAL_MATRIX)
    points = ((state or {}).get("selection") or {}).get("points") or []
    ss[keys.EVAL_CELL] = (points[0].get("y"), points[0].get("x")) if points else None


def selected_cell(names: list[str]) -> tuple[str, str] | None:
    cell = ss.get(keys.EVAL_CELL)
    shown = {chart_text(n): n for n in names}  # the chart's axes show the names as `chart_text` writes them
    return (shown[cell[0]], shown[cell[1]]) if cell and cell[0] in shown and cell[1] in shown else None
