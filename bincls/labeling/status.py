"""Where a labelling session stands: counts per class, how good the guesses are, how many are confident."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from bincls.labeling.answers import NEITHER, SKIP
from bincls.labeling.estimate import AccuracyEstimate, Guesses


@dataclass
class Status:
    classes: tuple[str, str]
    images: int  # usable images in the pile
    answered: dict[str, int]  # per class, skip, neither
    accepted: dict[str, int]  # accepted guesses per class
    unlabelled: int
    estimate: AccuracyEstimate | None
    confident_cut: float
    confident: dict[str, int]  # unlabelled images guessed at least `confident_cut` sure, per class
    features: dict
    skipped_files: int
    store: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        names = list(self.classes)
        return {
            "classes": names,
            "images": self.images,
            "answered": self.answered,
            "accepted": self.accepted,
            "unlabelled": self.unlabelled,
            "estimate": None if self.estimate is None else _finite(self.estimate.to_dict(names)),
            "confident": {"cut": self.confident_cut, "images": sum(self.confident.values()),
                          "per_class": self.confident},  # fmt: skip
            "features": self.features,
            "skipped_files": self.skipped_files,
            "store": self.store,
            "notes": self.notes,
        }


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def make_status(session, entries: dict[str, dict], g: Guesses, estimate: AccuracyEstimate | None,
                free: np.ndarray, cut: float) -> Status:  # fmt: skip
    a, b = session.classes
    answers = Counter(e.get("label") for e in entries.values() if e.get("how") == "answer")
    accepted = Counter(e.get("label") for e in entries.values() if e.get("how") == "accepted")
    confident = {a: 0, b: 0}
    if g.model is not None and len(free):
        mask = g.confident(cut)[free]
        guessed_b = np.nan_to_num(g.p1[free], nan=0.5) >= 0.5
        confident = {a: int((mask & ~guessed_b).sum()), b: int((mask & guessed_b).sum())}
    notes = []
    if not session.extractor.pretrained:
        notes.append(session.extractor.note)
    if g.model is None:
        notes.append(f"No guesses yet: answer at least one image of each class ({a}, {b}).")
    elif estimate is None:
        notes.append("No accuracy estimate yet: it needs at least two answers of each class.")
    if len(session.unreadable):
        notes.append(f"{len(session.unreadable)} image(s) could not be read for their features: left out.")
    return Status(
        classes=session.classes,
        images=len(session.pile.paths) - len(session.unreadable),
        answered={a: answers.get(a, 0), b: answers.get(b, 0), SKIP: answers.get(SKIP, 0),
                  NEITHER: answers.get(NEITHER, 0)},  # fmt: skip
        accepted={a: accepted.get(a, 0), b: accepted.get(b, 0)},
        unlabelled=int(len(free)),
        estimate=estimate,
        confident_cut=cut,
        confident=confident,
        features={"extractor": session.extractor.name, "pretrained": session.extractor.pretrained,
                  "note": session.extractor.note},  # fmt: skip
        skipped_files=len(session.pile.skipped),
        store=str(session.store.path),
        notes=notes,
    )
