"""The Train page's run panel: start or resume a run, follow it live, and show how it ended.

Everything shown is read from the run folder (`bincls.runs.summary`), never from a trainer."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from bincls import BinclsError
from bincls.paths import runs_dir
from bincls.runs.active import BusyError, active_run
from bincls.runs.folder import RunFolder
from bincls.runs.summary import RunSummary, console_tail, epoch_records, summarize
from bincls.training.launcher import resume_training, start_training
from bincls.training.preflight import preflight
from pages.support.shared import keys, run_pieces
from pages.support.shared.commands import command
from pages.support.shared.formatting import as_text, count, duration, num, pct
from pages.support.shared.messages import engine_words, show_error
from pages.support.shared.state import current_run, run_by_id
from pages.support.train import live, settings

ss = st.session_state


def launch(action: Callable[[], RunFolder]) -> None:
    """Start or resume a run in the background; a busy device or a user error becomes a message."""
    try:
        run = action()
    except BusyError as exc:
        ss[keys.CURRENT_RUN] = exc.run.id
        st.warning(as_text(exc), icon=":material/hourglass_top:")
    except BinclsError as exc:
        show_error(exc)
    else:
        ss[keys.CURRENT_RUN] = run.id
        ss[keys.TRAIN_CLEAR_NAME] = True  # the name was this run's
        st.rerun()  # fold the settings away and show the run's live panel


def start() -> RunFolder:
    """The run the settings describe, checked first so a wrong combination is a message now."""
    resolved = preflight(settings.form_config())
    return start_training(resolved, runs_dir(), processes=settings.processes())


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
        st.info("No run of this dataset yet: choose the settings above and press Train.",
                icon=":material/model_training:")
    elif summarize(run).active:
        live.live_panel(run.id)
    else:
        ended_panel(run)


def ended_panel(run: RunFolder) -> None:
    records = run.read_metrics()
    s = summarize(run, epoch_records(records))
    live.header(run, s)
    _outcome(s)
    _resume(run, s)
    if s.state in ("failed", "interrupted") and (tail := console_tail(run)) is not None:
        with st.expander("Console output (last lines)"):
            st.code(tail or "(empty)", language=None)
    if (best := s.best_record) is not None:
        cols = st.columns(6)
        cols[0].metric("Best epoch", f"{best['epoch']} of {s.epochs_done}")
        cols[1].metric("Val accuracy", pct(best.get("val_accuracy")))
        cols[2].metric("Val F1", num(best.get("val_f1")))
        cols[3].metric("Val AUROC", num(best.get("val_auroc")))
        cols[4].metric("Val loss", num(best.get("val_loss"), 4))
        evaluate = command(["python", "-m", "bincls", "evaluate", str(run.path)])
        cols[5].metric("Test accuracy", pct(s.test_accuracy), help="On the run's test split, once Evaluate "
                       f"has run it (the Evaluate page, or `{evaluate}`).")  # fmt: skip
        run_pieces.model_download(run, key=f"train_download_{run.id}")
        st.page_link("pages/evaluate.py", label="Next: evaluate the best checkpoint on the test set",
                     icon=":material/fact_check:")  # fmt: skip
    live.curves(live.figures(records, max(s.epochs_done, 1)), records)


def _resume(run: RunFolder, s: RunSummary) -> None:
    """The Resume button of a run that ended early, or why it cannot resume here."""
    if not s.resumable:
        return
    if (problem := settings.resume_problem(run)) is not None:
        st.info(f"Resume is not possible here: {as_text(problem)}", icon=":material/block:")
        return
    last = "its last checkpoint" if s.has_last_checkpoint else "the start (no checkpoint saved)"
    if st.button("Resume", icon=":material/resume:", type="primary",
                 help=f"Continue this run from {last}, with its optimizer state and the same split."):
        launch(lambda: resume_training(run, runs_dir()))


def _outcome(s: RunSummary) -> None:
    """One line on how the run ended; a run that learned nothing is never shown as a success."""
    asked, took = s.epochs_asked or 0, duration(s.duration_s)
    if s.state == "failed":
        why = engine_words(s.error or "no message was recorded.")
        st.error(f"The run failed: {why}", icon=":material/error:")
    elif s.state == "interrupted":
        st.warning("The training process ended without finishing (it was killed, or the machine restarted). "
                   "The checkpoints saved until then are kept.", icon=":material/warning:")
    elif s.state == "stopped":
        saved = "its last checkpoint is saved" if s.has_last_checkpoint else "it saved no checkpoint"
        st.info(f"Stopped on request after {s.epochs_done} of {count(asked, 'epoch')} ({took}); {saved}.",
                icon=":material/stop_circle:")
    elif s.state == "finished" and s.learned_nothing:
        st.warning(f"Finished {s.epochs_done} of {count(asked, 'epoch')} in {took}, but it learned nothing.",
                   icon=":material/warning:")
    elif s.state == "finished":
        st.success(f"Finished {s.epochs_done} of {count(asked, 'epoch')} in {took}{as_text(_why_ended(s))}.",
                   icon=":material/check_circle:")
    run_pieces.learned_nothing_warning(s)


def _why_ended(s: RunSummary) -> str:
    """Why a finished run trained fewer epochs than asked, in the page's words ("" when it did them all)."""
    if s.ended_by == "time_budget":
        return f": {s.stop_reason}" if s.stop_reason else ": its time budget was reached"
    if s.ended_by == "early_stopping":
        detail = s.stop_reason.split(": ", 1)[-1] if s.stop_reason else ""
        return f" (early stopping: {detail})" if detail else " (early stopping)"
    if s.ended_by == "divergence_guard":
        return f": {s.stop_reason}" if s.stop_reason else ": training diverged"
    return " (early stopping)" if s.early_stopped else ""
