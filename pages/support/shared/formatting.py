"""How values read on the pages: durations, times, percentages, run states, dataset and run labels, and
user-supplied names as plain text wherever Streamlit renders markdown."""

from __future__ import annotations

import html
import re
import string
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
# Every ASCII punctuation character may be backslash-escaped in CommonMark and then reads as itself: escaping
# them all leaves no link, image, emphasis, heading, table, math ($) or directive (:red[...]) in a name.
# Line breaks and other control characters would start new blocks: spaces.
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
# GFM turns bare addresses into links after the escapes are read (http://…, www.…, a@b.c): an invisible word
# joiner (U+2060) inside "http:", "www." and before "@" keeps them text.
_AUTOLINK = re.compile(r"(?i)(https?|ftp|www)(?=[:.])|(?=@)")
JOINER = "\u2060"


def md(name: object) -> str:
    """A user-supplied name (a run, class, folder or file name) as literal text in anything Streamlit renders
    as markdown: st.markdown, captions, alerts, headings, widget and metric labels, image captions,
    progress texts. A run named "![x](http://host/t.png)" shows those characters, and fetches nothing.
    Not for plain-text places (selectbox options, table cells, chart texts): there it would show the
    backslashes."""
    text = _AUTOLINK.sub(lambda m: (m.group(1) or "") + JOINER, _CONTROL.sub(" ", str(name)))
    return _PUNCTUATION.sub(r"\\\1", text)


def code(text: object) -> str:
    """`text` as inline code in markdown, whatever it holds: the fence is longer than any run of backticks
    inside (CommonMark's rule), so a path with a backtick cannot end the code span and start markdown."""
    text = _CONTROL.sub(" ", str(text))
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def chart_text(name: object) -> str:
    """A user-supplied name in a plotly figure (legend, axis labels, hover): plotly draws a few HTML tags
    there (<a href>, <b>, <br>), so the name's own < and & are written as entities, which it shows as
    themselves."""
    return html.escape(_CONTROL.sub(" ", str(name)), quote=False)


_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")


def as_text(message: object) -> str:
    """An engine message (an error, a note) in markdown: its `code spans` kept, everything else literal.
    Messages name the user's files and folders, which may hold markdown of their own."""
    text, out, at = _CONTROL.sub(" ", str(message)), [], 0
    for m in _CODE_SPAN.finditer(text):
        out += [md(text[at : m.start()]), m.group(0)]
        at = m.end()
    return "".join([*out, md(text[at:])])


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
    # An unnamed run's title already ends with its date.
    parts = [run.title, how if run.name is None else "", f"val {pct(run.best_val_accuracy)}",
             when(run.created) if run.name else "", run.state if run.state != "finished" else ""]  # fmt: skip
    mark = "⚠ learned nothing · " if run.learned_nothing else ""
    return mark + " · ".join(p for p in parts if p)
