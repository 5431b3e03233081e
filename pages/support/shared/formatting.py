"""How values read on the pages: durations, times, percentages, run states, dataset and run labels."""

from __future__ import annotations

import time
from pathlib import Path

from bincls.paths import SAMPLE_DATA
from bincls.runs.summary import RunSummary

STATE_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/play_circle:",
    "finished": ":material/check_circle:",
    "stopped": ":material/stop_circle:",
    "failed": ":material/error:",
    "interrupted": ":material/warning:",
}
# Plain-text state marks, for tables where material icons do not render.
STATE_MARKS = {
    "queued": "◷ queued",
    "running": "▶ running",
    "finished": "✔ finished",
    "stopped": "■ stopped",
    "failed": "✖ failed",
    "interrupted": "⚠ interrupted",
}
SAMPLE_LABEL = "Bundled sample (ants vs bees)"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(max(seconds, 0))
    return f"{s // 3600}h {s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def num(v: float | None, digits: int = 3) -> str:
    """A number, or a dash when there is none (None, NaN, infinite). Large values in scientific notation:
    a metric tile holds about eight characters, and a diverged run's loss (74057224.0000) was cut off."""
    if v is None or v != v or v in (float("inf"), float("-inf")):
        return "–"
    if abs(v) >= 1e4:
        return f"{v:.3g}"
    text = f"{v:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # never -0.000


def count(n: int, word: str) -> str:
    """`n` and the word, plural unless n is 1: 1 epoch, 3 epochs."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def data_label(paths: list[str]) -> str:
    """How a dataset is named on the pages: the sample, or its folder names."""
    paths = [str(p) for p in paths]
    if paths == [str(SAMPLE_DATA)]:
        return SAMPLE_LABEL
    return " + ".join(Path(p).name for p in paths)


def run_label(run: RunSummary) -> str:
    """A run in a picker, told apart from the others: its name (else model and weights), how it trained,
    its best validation accuracy, its date, and a mark when it learned nothing."""
    how = ("frozen" if run.frozen else "fine-tuned") if run.frozen is not None else ""
    parts = [run.title, how if run.name is None else "", f"val {pct(run.best_val_accuracy)}",
             when(run.created), run.state if run.state != "finished" else ""]  # fmt: skip
    mark = "⚠ learned nothing · " if run.learned_nothing else ""
    return mark + " · ".join(p for p in parts if p)
