"""One label decision (relabel, exclude, keep; None forgets it) saved at once into the dataset's overlay,
as the audit review and Evaluate's galleries both do; a refusal is said under `message_key`."""

from __future__ import annotations

from pathlib import Path

from bincls import BinclsError
from bincls.data.overlay import forget_decisions, save_decisions
from pages.support.shared.formatting import as_text, md
from pages.support.shared.messages import flash


def save_decision(data: list[str], path: str, action: str | None, message_key: str) -> None:
    try:
        if action is None:
            forget_decisions(data, [path])
        else:
            save_decisions(data, {path: action})
    except (BinclsError, OSError) as exc:
        flash(message_key, "error", f"The decision on {md(Path(path).name)} was not saved: {as_text(exc)}")
