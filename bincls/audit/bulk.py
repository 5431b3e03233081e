"""Decisions on many of the label audit's rows at once, and their undo: which rows a score threshold picks,
writing them into the dataset's overlay, and putting back exactly what was there before.

A bulk action only decides images nobody has decided yet: a person's own keep, exclude or relabel on one
image is never overridden by a threshold. It writes the same overlay (`bincls.data.overlay`) the
per-image decisions write; the user's files are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bincls.data.overlay import Decisions, forget_decisions, load_decisions, save_decisions
from bincls.errors import BinclsError

KIND_OF = {"relabel": "label", "exclude": "outlier"}  # a bulk action and the kind of row it applies to


@dataclass(frozen=True)
class BulkChange:
    """One bulk action as done: what it wrote, at which threshold, and each image's decision before it
    (None: the image had none). Enough to undo it exactly."""

    action: str
    min_score: float
    before: dict[str, str | None]

    def __len__(self) -> int:
        return len(self.before)


def _check(action: str) -> None:
    if action not in KIND_OF:
        raise BinclsError(f"Unknown bulk action {action!r}: use one of {', '.join(KIND_OF)}.")


def picked(rows: Iterable, action: str, min_score: float, decided: dict[str, str] | None = None) -> list[str]:
    """The paths a bulk `action` at `min_score` would decide: rows of its kind (suggested relabels for
    "relabel", outliers for "exclude") scoring at least `min_score` that have no decision in `decided`.
    Each path once, in the rows' order (the most likely problems first)."""
    _check(action)
    decided = Decisions.of(decided or {})
    out: dict[str, None] = {}
    for row in rows:
        if row.kind == KIND_OF[action] and row.score >= min_score and row.path not in decided:
            out.setdefault(row.path)
    return list(out)


def apply_bulk(data: list[str], rows: Iterable, action: str, min_score: float) -> BulkChange:
    """Decide `action` on every image `picked` chooses, in the overlay of the dataset at `data`; returns the
    record `undo_bulk` needs."""
    decided = load_decisions(data)
    paths = picked(rows, action, min_score, decided)
    before = {p: decided.get(p) for p in paths}
    if paths:
        save_decisions(data, dict.fromkeys(paths, action))
    return BulkChange(action, min_score, before)


def undo_bulk(data: list[str], change: BulkChange) -> int:
    """Put back the decisions `change` replaced (forget the ones that were not there), on the images whose
    decision is still the one it wrote: a decision made by hand since then is the newer word and stays.
    Returns how many images were put back."""
    decided = load_decisions(data)
    still = [p for p in change.before if decided.get(p) == change.action]
    restore = {p: change.before[p] for p in still if change.before[p] is not None}
    forget = [p for p in still if change.before[p] is None]
    if restore:
        save_decisions(data, restore)
    if forget:
        forget_decisions(data, forget)
    return len(still)
