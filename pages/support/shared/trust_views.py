"""How much to trust a result, on the pages: images unlike the training ones (Predict), error bars
(Evaluate) and whether two runs really differ (Runs). The numbers all come from the engine."""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from bincls import BinclsError
from bincls.inference.intervals import fmt_interval
from bincls.runs.folder import RunFolder
from pages.support.shared import keys, loaders
from pages.support.shared.formatting import md
from pages.support.shared.messages import show_error

ss = st.session_state
UNLIKE = "Unlike the training images"

# Predict ------------------------------------------------------------------------------------------------


def headline(p) -> None:
    """A prediction's headline: the class and how sure, or, for an image the out-of-distribution detector
    flagged, "Unlike the training images" first, and the class only as the guess it is."""
    file = md(Path(p.source).name)
    if not p.ood:
        st.markdown(f"**{md(p.class_name)}** · {p.probability:.0%} sure  \n:gray[{file}]")
        return
    st.warning(
        f"**{UNLIKE}** (out-of-distribution score {p.ood_score:,.0f}): the model has seen nothing like this "
        f"image, so its answer means little.  \n:gray[{file} · its guess: {md(p.class_name)}, "
        f"{p.probability:.0%}]", icon=":material/report:",
    )  # fmt: skip


def predicted_cell(p) -> str:
    """The predictions table's "Predicted" cell (plain text): the class, or first that the image is unlike
    the training images."""
    if p.ood:
        return f"⚠ {UNLIKE.lower()} (guess: {p.class_name})"
    return p.class_name or ""


def ood_cells(p) -> dict:
    """The predictions table's columns about the detector ("" when the model has none)."""
    flag = "" if p.ood is None else ("⚠ yes" if p.ood else "no")
    return {UNLIKE: flag, "OOD score": p.ood_score if p.ood is not None else None}


OOD_COLUMNS = {
    UNLIKE: st.column_config.TextColumn(
        UNLIKE, width="medium",
        help="The out-of-distribution detector found the image unlike every training image: the prediction "
             "means little."),
    "OOD score": st.column_config.NumberColumn(
        format="%.0f", help="Distance from the training images' features; flagged above the threshold."),
}  # fmt: skip


def detector_note(predictor) -> str:
    """One line on the model's out-of-distribution detector, for the Predict page's caption."""
    threshold = predictor.scorer.ood_threshold
    if threshold is None:
        return ("no out-of-distribution detector (the validation split was too small to place one, or the "
                "run predates it): images unlike the training ones are not flagged")
    rate = (predictor.ckpt.get("ood") or {}).get("false_flag_rate", 0.0)
    return (f"images scoring above {threshold:,.0f} are flagged as unlike the training images "
            f"(about {rate:.0%} of ordinary images are flagged too)")


# Evaluate -----------------------------------------------------------------------------------------------


def metric_intervals(m: dict) -> dict[str, str]:
    """Each metric with its 95% interval and the images it is measured on: "0.50 (0.19-0.81) on 6 images".

    The count is the metric's own denominator: precision is measured on the images called positive,
    recall on the positive ones.
    """
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    everything = tn + fp + fn + tp
    n = {"accuracy": everything, "balanced_accuracy": everything, "precision": tp + fp, "recall": tp + fn,
         "specificity": tn + fp,
         "f1": tp + fp + fn, "auroc": tn + fp + fn + tp}  # fmt: skip
    out = {k: fmt_interval(m.get(k, math.nan), m.get(f"{k}_ci", (math.nan, math.nan)), n[k]) for k in n}
    out["loss"] = f"on {m['n']} images"
    return out


# Runs ---------------------------------------------------------------------------------------------------


def paired_test(runs: list[RunFolder]) -> None:
    """For two selected runs: are they really different on the test images both were evaluated on?"""
    from bincls.inference.compare import evaluated_images

    if len(runs) != 2:
        return
    st.subheader("Is the difference real?", anchor=False)
    a, b = runs
    with_ckpt = {r.id for r in loaders.checkpoint_runs()}
    if not {a.id, b.id} <= with_ckpt:
        st.caption("Both runs need a checkpoint (a finished epoch, and not running) to be compared.")
        return
    images_a, images_b = evaluated_images(a), evaluated_images(b)
    if not images_a or images_a != images_b:
        st.info(
            "These runs were tested on different images (other data, split shares or seed, or a label "
            "audit in between), so they cannot be compared image by image. Train both with the same "
            "data and seed to compare them.", icon=":material/compare_arrows:",
        )  # fmt: skip
        return
    pair = (a.id, b.id)
    if tuple(ss.get(keys.RUNS_PAIR) or ()) != pair:
        st.caption(f"Both were tested on the same {len(images_a)} images: McNemar's test can say whether one "
                   "is really better, from the images only one of them gets right.")
        # A callback, so that the run it starts shows the answer without the button above it
        st.button(f"Compare them on the {len(images_a)} test images", icon=":material/balance:",
                  on_click=_test_pair, args=(pair,),
                  help="Runs both models on their test images (Evaluate's results are reused)")
        return
    from bincls.inference.compare import compare_runs

    try:
        c = compare_runs(loaders.evaluation(a), loaders.evaluation(b))
    except BinclsError as exc:
        show_error(exc)
        return
    st.markdown(verdict(c, *run_names(a, b)))


def _test_pair(pair: tuple[str, str]) -> None:
    ss[keys.RUNS_PAIR] = pair


def run_names(a: RunFolder, b: RunFolder) -> tuple[str, str]:
    """The two runs as the user knows them (their names, else model · recipe · date), in bold; the end of
    the id only when the names alone do not tell them apart."""
    from bincls.runs.summary import summarize

    titles = [summarize(r).title for r in (a, b)]
    if titles[0] == titles[1]:
        titles = [f"{t} ({r.id.rsplit('-', 1)[-1]})" for t, r in zip(titles, (a, b))]
    return f"**{md(titles[0])}**", f"**{md(titles[1])}**"


def verdict(c, name_a: str, name_b: str) -> str:
    """What McNemar's test says about two runs, in words."""
    head = (f"On the same {c.images} test images, {name_a} gets {c.right_a} right and {name_b} gets "
            f"{c.right_b} right.")  # fmt: skip
    if c.a_only + c.b_only == 0:
        return f"{head} They get exactly the same images right and wrong: nothing tells them apart."
    p = "p < 0.001" if c.p_value < 0.001 else f"p = {c.p_value:.3f}"
    split = (f"{c.a_only} image{'s' if c.a_only != 1 else ''} only {name_a} gets right, {c.b_only} only "
             f"{name_b} gets right (McNemar's exact test: {p}).")  # fmt: skip
    if c.real:
        better = name_a if c.a_only > c.b_only else name_b
        return f"{head} {split}  \n:green[**The difference is real**]: {better} is better on these images."
    return (f"{head} {split}  \n:orange[**The test split is too small to tell these runs apart**]: a "
            "difference like this one comes up by chance too often. More test images would settle it.")
