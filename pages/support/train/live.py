"""The Train page's view of a run: its header and curves, and the live panel that follows a run in progress.

Watching must not slow the run (bench/watch_cost.py): the live panel reruns every LIVE_EVERY seconds,
reads only the metrics lines added since its last read (`MetricsTail`), and builds the charts again only
when an epoch ended or, for the per-step loss, at most every CHART_EVERY seconds; in between it sends the
figures it has.
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from bincls.runs.folder import RunFolder
from bincls.runs.metrics_tail import MetricsTail
from bincls.runs.summary import RunSummary, epoch_records, summarize
from bincls.training.launcher import stop_run
from pages.support.shared import charts, keys
from pages.support.shared.formatting import STATE_ICONS, duration, md, num, pct
from pages.support.shared.state import run_by_id

LIVE_EVERY = 2.0  # seconds between redraws of the live panel
CHART_EVERY = 10.0  # seconds between redraws of the charts while only steps (no epoch) were added
ss = st.session_state


def header(run: RunFolder, s: RunSummary) -> None:
    status = run.status()
    st.subheader(f"{STATE_ICONS.get(s.state, '')} {md(s.title)} · {run.id}", anchor=False)
    facts = [f"**{s.state}**", s.model, md(s.weights_label),
             ("frozen backbone" if s.frozen else "fine-tuned") if s.frozen is not None else "",
             f"preset {s.preset}" if s.preset else "", f"{s.img_size} px" if s.img_size else "",
             f"{s.optimizer} lr {s.lr:g}" if s.lr else s.optimizer,
             status.get("device_name", "")]  # fmt: skip
    if status.get("train_images") is not None:
        facts.append(f"{status['train_images']} train / {status['val_images']} val images")
    st.caption(" · ".join(f for f in facts if f))


def curves(figures: tuple | None, records: list[dict]) -> None:
    """The loss and accuracy charts, and a line on the last epoch."""
    if figures is None:
        st.caption("The curves appear after the first training step.")
        return
    c1, c2 = st.columns(2)
    c1.plotly_chart(figures[0])
    c2.plotly_chart(figures[1])
    if epochs := epoch_records(records):
        last = epochs[-1]
        st.caption(
            f"Epoch {last['epoch']}: train loss {num(last.get('train_loss'), 4)}, "
            f"accuracy {pct(last.get('train_accuracy'))} · val loss {num(last.get('val_loss'), 4)}, "
            f"accuracy {pct(last.get('val_accuracy'))} · {last.get('epoch_time', 0):.1f} s"
        )


def figures(records: list[dict], x_max: float) -> tuple | None:
    return (charts.loss_curves(records, x_max), charts.accuracy_curves(records, x_max)) if records else None


@st.cache_resource(max_entries=8, show_spinner=False)
def _tail(run_path: str) -> MetricsTail:
    """One tail per run, shared by every session that follows it."""
    return MetricsTail(RunFolder(Path(run_path)))


def _live_figures(run: RunFolder, records: list[dict], x_max: float) -> tuple | None:
    """The charts, built again only when an epoch ended or CHART_EVERY seconds of new steps passed."""
    epochs, steps = len(epoch_records(records)), len(records)
    kept = ss.get(keys.TRAIN_LIVE_FIGURES) or {}
    fresh = kept.get("run") == run.id and kept.get("epochs") == epochs and kept.get("x_max") == x_max and (
        kept.get("steps") == steps or time.monotonic() - kept.get("at", 0) < CHART_EVERY)  # fmt: skip
    if not fresh:
        kept = {"run": run.id, "epochs": epochs, "steps": steps, "x_max": x_max, "at": time.monotonic(),
                "figures": figures(records, x_max)}  # fmt: skip
        ss[keys.TRAIN_LIVE_FIGURES] = kept
    return kept["figures"]


def _progress(run: RunFolder, s: RunSummary, status: dict, planned: int, bar) -> None:
    """What the run is doing, as a progress bar with a count: preparing the images, or which epoch."""
    epoch, step, steps = status.get("epoch") or 0, status.get("step") or 0, status.get("steps_per_epoch") or 0
    prep = status.get("preparing") or {}
    if prep.get("total"):
        what = str(prep.get("what", "preparing the images"))
        left = f" · about {duration(prep['eta_s'])} left" if prep.get("eta_s") is not None else ""
        bar.progress(min(prep["done"] / prep["total"], 1.0),
                     text=f"{what[:1].upper()}{what[1:]}: {prep['done']:,} of {prep['total']:,} images{left}")
    elif s.state == "queued" or not epoch:
        bar.progress(0.0, text=f"Starting: {status.get('message') or 'launching the training process'}…")
    else:
        done = min(((epoch - 1) + (step / steps if steps else 0)) / planned, 1.0)
        bar.progress(done, text=f"Epoch {epoch}/{planned} · step {step}/{steps} · "
                                f"{status.get('images_per_s') or 0:.0f} images/s · "
                                f"about {duration(status.get('eta_s'))} left")  # fmt: skip


def stop_pending(run: RunFolder, status: dict) -> bool:
    """A stop was asked for this attempt of the run (a STOP file older than its start is a past one's)."""
    try:
        asked = (run.path / "STOP").stat().st_mtime
    except OSError:
        return False
    return not status.get("started") or asked >= status["started"] - 1


@st.fragment(run_every=LIVE_EVERY)
def live_panel(run_id: str) -> None:
    """Redrawn from the run folder alone; the page around it stays put."""
    run = run_by_id(run_id)
    if run is None:
        st.warning(f"Run {run_id} was deleted.")
        return
    s, status = summarize(run), run.status()
    if not s.active:
        st.rerun()  # the run ended: redraw the whole page with its results
    header(run, s)
    planned = status.get("epochs") or s.epochs_asked or 1  # a time budget plans fewer than asked
    bar, stop = st.columns([6, 1], vertical_alignment="bottom")
    _progress(run, s, status, planned, bar)
    pending = stop_pending(run, status)
    # One button whose identity never changes, so a rerun never shows two of them.
    if stop.button("Stop", icon=":material/stop:", width="stretch", disabled=pending):
        stop_run(run)
        pending = True
    if pending:
        st.caption(":material/hourglass_top: Stop requested: the run ends after the current batch "
                   "and saves its last checkpoint.")
    records = _tail(str(run.path)).read()
    curves(_live_figures(run, records, planned), records)
