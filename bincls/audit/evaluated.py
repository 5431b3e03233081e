"""Audit decisions taken where a wrong label shows up after training (Evaluate's galleries): which dataset's
overlay a decision on an evaluated image belongs to, and which class the image is filed as.

The decisions themselves are the overlay's (`bincls.data.overlay`): relabel means "train it as the other
class than the one it is filed under", so the class a relabel gives must be worked out from the filing,
not from the class the evaluation shows (a run that honoured a relabel shows the image as its new class).
"""

from __future__ import annotations

import os
from pathlib import Path

from bincls.data.overlay import Decisions
from bincls.json_files import read_json

RUN_DECISIONS = "audit_decisions.json"  # what a run honoured, as training records it (training/setup.py)


def decisions_dataset(config: dict, data: list[str] | None = None) -> list[str]:
    """The dataset whose overlay a decision on an evaluated image goes to: the folders evaluated when they
    were given (`data`), else the data the run trained on, as the run's config.json records it (the paths
    the Data page uses for it)."""
    return [str(p) for p in data] if data else [str(p) for p in config.get("data") or []]


def honoured_decisions(run_path: str | os.PathLike) -> Decisions:
    """The decisions the run trained with ({path: action}); empty for a run without any, or a damaged file
    (the images then count as filed as the evaluation shows them)."""
    found = read_json(Path(run_path) / RUN_DECISIONS, default={})
    ok = isinstance(found, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in found.items())
    return Decisions.of(found if ok else {})


def filed_class(path: str, shown: str, class_names: list[str], honoured: dict[str, str]) -> str:
    """The class `path` is filed under, from the class the evaluation shows it as (`shown`): the other one
    when the run honoured a relabel of it."""
    return other_class(shown, class_names) if Decisions.of(honoured).get(path) == "relabel" else shown


def other_class(filed: str, class_names: list[str]) -> str:
    """The class a relabel of an image filed under `filed` trains it as."""
    return class_names[1] if filed == class_names[0] else class_names[0]
