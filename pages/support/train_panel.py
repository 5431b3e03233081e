"""The Train page's run panel: start or resume a run, follow it live, and show how it ended.

Everything shown is read from the run folder (`bincls.training.run_summary`), never from a trainer."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from bincls import BinclsError
from bincls.paths import runs_dir
from bincls.training.launcher import BusyError, active_run, resume_training, start_training, stop_run
from bincls.training.preflight import preflight
from bincls.training.run_folder import RunFolder
from bincls.training.run_summary import RunSummary, console_tail, epoch_records, summarize
from pages.support import charts, keys, train_settings
from pages.support.formatting import STATE_ICONS, duration, num, pct
from pages.support.messages import show_error
from pages.support.state import current_run, run_by_id

ss = st.session_state


def launch(action: Callable[[], RunFolder]) -> None:
    """Start or resume a run in the background; a busy device or a user error becomes a message."""
    try:
        run = action()
    except BusyError as exc:
        ss[keys.CURRENT_RUN] = exc.run.id
        st.warning(str(exc), icon=":material/hourglass_top:")
    except BinclsError as exc:
        show_error(exc)
    else:
        ss[keys.CURRENT_RUN] = run.id
        st.rerun()  # fold the settings away and show the run's live panel


def start() -> RunFolder:
    """The run the settings describe, checked first so a wrong combination is a message now."""
    resolved = preflight(train_settings.form_config())
    return start_training(resolved.config, runs_dir(), processes=train_settings.processes())


def shown_run() -> RunFolder | None:
    """The run this session started or picked, else the active one, else the newest."""
    return run_by_id(ss.get(keys.CURRENT_RUN)) or active_run(runs_dir()) or current_run()


def fold_settings_for(run: RunFolder | None) -> None:
    """Once per run the user is following, fold the settings away so the run is in view."""
    ss.setdefault(keys.TRAIN_SETTINGS_OPEN, False)  # the recipe leads; the details are there to open
    if run is None or ss.get(keys.TRAIN_COLLAPSED_FOR) == run.id:
        return
    if run.id == ss.get(keys.CURRENT_RUN) or summarize(run).active:
        ss[keys.TRAIN_SETTINGS_OPEN] = False
        ss[keys.TRAIN_COLLAPSED_FOR] = run.id


def run_panel(run: RunFolder | None) -> None:
    busy = active_run(runs_dir())
    if busy is not None and run is not None and run.id != busy.id:
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        c1.info(f"Run {busy.id} is training now.", icon=":material/play_circle:")
        if c2.button("Show it", width="stretch"):
            ss[keys.CURRENT_RUN] = busy.id
            st.rerun()
    if run is None:
        st.info("No runs yet: choose the settings above and press Train.", icon=":material/model_training:")
    elif summarize(run).active:
        live_panel(run.id)
    else:
        ended_panel(run)


def _header(run: RunFolder, s: RunSummary) -> None:
    status = run.status()
    st.subheader(f"{STATE_ICONS.get(s.state, '')} Run {run.id}", anchor=False)
    facts = [f"**{s.state}**", s.model, f"{s.optimizer} lr {s.lr:g}" if s.lr else s.optimizer,
             status.get("device_name", "")]  # fmt: skip
    if status.get("train_images") is not None:
        facts.append(f"{status['train_images']} train / {status['val_images']} val images")
    st.caption(" · ".join(f for f in facts if f))


def _curves(run: RunFolder, records: list[dict], x_max: float) -> None:
    if not records:
        st.caption("The curves appear after the first training step.")
        return
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.loss_curves(records, x_max))
    c2.plotly_chart(charts.accuracy_curves(records, x_max))
    if epochs := epoch_records(records):
        last = epochs[-1]
        st.caption(
            f"Epoch {last['epoch']}: train loss {num(last.get('train_loss'), 4)}, "
            f"accuracy {pct(last.get('train_accuracy'))} · val loss {num(last.get('val_loss'), 4)}, "
            f"accuracy {pct(last.get('val_accuracy'))} · {last.get('epoch_time', 0):.1f} s"
        )


@st.fragment(run_every=1.0)
def live_panel(run_id: str) -> None:
    """Redrawn about once a second from the run folder alone; the page around it stays put."""
    run = run_by_id(run_id)
    if run is None:
        st.warning(f"Run {run_id} was deleted.")
        return
    s, status = summarize(run), run.status()
    if not s.active:
        st.rerun()  # the run ended: redraw the whole page with its results
    _header(run, s)
    epochs = s.epochs_asked or 1
    epoch, step, steps = status.get("epoch") or 0, status.get("step") or 0, status.get("steps_per_epoch") or 0
    bar, stop = st.columns([6, 1], vertical_alignment="bottom")
    if s.state == "queued":
        bar.progress(0.0, text=f"Starting: {status.get('message') or 'launching the training process'}…")
    elif not epoch:
        bar.progress(0.0, text=f"Epoch 1/{epochs} · first batches…")
    else:
        done = min(((epoch - 1) + (step / steps if steps else 0)) / epochs, 1.0)
        bar.progress(done, text=f"Epoch {epoch}/{epochs} · step {step}/{steps} · "
                                f"{status.get('images_per_s') or 0:.0f} images/s · "
                                f"ETA {duration(status.get('eta_s'))}")  # fmt: skip
    # One button whose identity never changes, so a rerun never shows two of them.
    if stop.button("Stop", icon=":material/stop:", width="stretch", disabled=run.stop_requested()):
        stop_run(run)
    if run.stop_requested():
        st.caption(":material/hourglass_top: Stop requested: the run ends after the current batch "
                   "and saves its last checkpoint.")
    _curves(run, run.read_metrics(), epochs)


def ended_panel(run: RunFolder) -> None:
    records = run.read_metrics()
    s = summarize(run, epoch_records(records))
    _header(run, s)
    _outcome(s)
    if s.resumable:
        last = "its last checkpoint" if s.has_last_checkpoint else "the start (no checkpoint saved)"
        if st.button("Resume", icon=":material/resume:", type="primary",
                     help=f"Continue this run from {last}, with its optimizer state and the same split."):
            launch(lambda: resume_training(run, runs_dir()))
    if s.state in ("failed", "interrupted") and (tail := console_tail(run)) is not None:
        with st.expander("Console output (last lines)"):
            st.code(tail or "(empty)", language=None)
    if (best := s.best_record) is not None:
        cols = st.columns(5)
        cols[0].metric("Best epoch", f"{best['epoch']} of {s.epochs_done}")
        cols[1].metric("Val accuracy", pct(best.get("val_accuracy")))
        cols[2].metric("Val F1", num(best.get("val_f1")))
        cols[3].metric("Val AUROC", num(best.get("val_auroc")))
        cols[4].metric("Val loss", num(best.get("val_loss"), 4))
        st.page_link("pages/evaluate.py", label="Evaluate the best checkpoint on the test set",
                     icon=":material/fact_check:")
    _curves(run, records, max(s.epochs_done, 1))


def _outcome(s: RunSummary) -> None:
    """One line on how the run ended."""
    asked, took = s.epochs_asked or 0, duration(s.duration_s)
    if s.state == "failed":
        st.error(f"The run failed: {s.error or 'no message was recorded.'}", icon=":material/error:")
    elif s.state == "interrupted":
        st.warning("The training process ended without finishing (it was killed, or the machine restarted). "
                   "The checkpoints saved until then are kept.", icon=":material/warning:")
    elif s.state == "stopped":
        saved = "its last checkpoint is saved" if s.has_last_checkpoint else "it saved no checkpoint"
        st.info(f"Stopped on request after {s.epochs_done} of {asked} epochs ({took}); {saved}.",
                icon=":material/stop_circle:")
    elif s.state == "finished":
        early = " (early stopping)" if s.early_stopped else ""
        st.success(f"Finished {s.epochs_done} of {asked} epochs in {took}{early}.",
                   icon=":material/check_circle:")
