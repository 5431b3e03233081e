"""A labelling session on a pile: suggestions, answers, the guesses, the status, the labelled CSV.

    session = LabelingSession.open(["photos/pile"], ("cat", "dog"))
    for s in session.suggest(10):                 # path, guess, p, why
        session.answer(s.path, "cat")             # or "dog", "skip", "neither"
    print(session.status().to_dict())             # counts, accuracy estimate, confident guesses
    session.export("labels.csv", accept=True)     # answers + the confident guesses: train on it

Every call reads the answers afresh from the session's store, so two tabs (or the app and the command
line) work on the same session; every change is one locked, atomic write.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bincls.data.keyed_store import Applied, KeyedStore, path_key
from bincls.data.labelled_csv import write_labelled_csv
from bincls.errors import BinclsError
from bincls.labeling.answers import (
    NEITHER,
    SKIP,
    Imported,
    answer_entry,
    check_classes,
    import_answers,
    normal_label,  # fmt: skip
    store_for,
)
from bincls.labeling.embedding import fit_projection
from bincls.labeling.estimate import CONFIDENT, Guesses, accuracy_estimate, guesses
from bincls.labeling.features import Extractor, PileFeatures, pile_features
from bincls.labeling.model import one_blas_thread
from bincls.labeling.pile import Pile, Progress, find_pile
from bincls.labeling.shared_work import leave as leave_shared_work
from bincls.labeling.status import Status, make_status
from bincls.labeling.strategy import SESSION, Strategy, choose


@dataclass(frozen=True)
class Suggestion:
    path: str
    guess: str  # one of the two classes
    p: float  # the guess's probability (0.5 when there is no model yet)
    why: str  # "diverse", "unlike the answers", "uncertain", "likely rare"

    def to_dict(self) -> dict:
        return {"path": self.path, "guess": self.guess, "p": round(self.p, 4)}


class LabelingSession:
    @one_blas_thread
    def __init__(self, pile: Pile, classes: tuple[str, str], features: PileFeatures):
        self.pile = pile
        # sorted as a labelled CSV's classes are: the order they were named in changes nothing
        self.classes = tuple(sorted(check_classes(classes), key=lambda c: (c.lower(), c)))
        self.extractor: Extractor = features.extractor
        self.computed = features.computed
        unreadable, features = features.unreadable, features.matrix
        self.store: KeyedStore = store_for(pile.identity, self.classes)
        self._keys = pile.keys
        self._index = {k: i for i, k in enumerate(self._keys)}
        self.unreadable = np.array(sorted(unreadable), dtype=int)
        if len(self.unreadable):  # their rows are NaN: projected as zeros, and never suggested
            features = features.copy()
            features[self.unreadable] = 0
        usable = np.setdiff1d(np.arange(len(pile.paths)), self.unreadable)
        self.x = fit_projection(features[usable] if len(self.unreadable) else features).apply(features)
        self.x[self.unreadable] = 0
        self._cache: tuple[dict, Guesses] | None = None

    @classmethod
    def open(cls, folders: list[str | os.PathLike], classes: tuple[str, str] | list[str],
             progress: Progress | None = None) -> LabelingSession:  # fmt: skip
        """Check the pile's files, compute (or read) their features: the session, ready to suggest."""
        classes = check_classes(classes)
        pile = find_pile(folders, progress)
        features = pile_features(pile.paths, progress=progress)
        leave_shared_work()  # under torchrun: the passes above were the shared part
        return cls(pile, classes, features)

    # The answers ---------------------------------------------------------------------------------
    def entries(self) -> dict[str, dict]:
        """{key: entry} for the images of this pile (see bincls.labeling.answers)."""
        return {k: v for k, v in self.store.entries().items() if k in self._index and isinstance(v, dict)}

    def answer(self, path: str, label: str) -> Applied:
        return self.answer_many({path: label})

    def answer_many(self, answers: dict[str, str]) -> Applied:
        """Record answers ({path: class, "skip" or "neither"}); the last answer on an image wins."""
        changes = {}
        for path, label in answers.items():
            name = normal_label(label, self.classes)
            if name is None:
                raise BinclsError(f"{label!r} is not an answer: use {self.classes[0]}, {self.classes[1]}, "
                                  f"{SKIP} or {NEITHER}.")  # fmt: skip
            changes[self._key(path)] = answer_entry(name)
        return self.store.update(changes, meta={"classes": list(self.classes)})

    def forget(self, paths: list[str]) -> Applied:
        """Undo the answers (or accepted guesses) on `paths`: they become unlabelled again."""
        return self.store.update({self._key(p): None for p in paths})

    def import_answers(self, csv_path: str | os.PathLike) -> Imported:
        return import_answers(self.store, csv_path, self.classes, set(self._index))

    def _key(self, path: str) -> str:
        key = path_key(path)
        if key not in self._index:
            raise BinclsError(f"{path} is not an image of this pile ({', '.join(self.pile.folders)}).")
        return key

    # The model -----------------------------------------------------------------------------------
    @one_blas_thread
    def _state(self) -> tuple[dict[str, dict], Guesses, np.ndarray, np.ndarray, np.ndarray]:
        """(entries, guesses, answered indices, their labels 0/1, unavailable indices)."""
        entries = self.entries()
        answered, labels = [], []
        for key, e in entries.items():
            if e.get("how") == "answer" and e.get("label") in self.classes:
                answered.append(self._index[key])
                labels.append(self.classes.index(e["label"]))
        order = np.argsort(answered, kind="stable")
        answered_a, labels_a = np.array(answered, int)[order], np.array(labels, int)[order]
        if self._cache is None or self._cache[0] != entries:
            self._cache = (entries, guesses(self.x, answered_a, labels_a))
        taken = np.array(sorted(self._index[k] for k in entries), dtype=int)
        unavailable = np.union1d(taken, self.unreadable)
        return entries, self._cache[1], answered_a, labels_a, unavailable

    @one_blas_thread
    def suggest(self, k: int = 10, strategy: Strategy = SESSION) -> list[Suggestion]:
        """The next k images to answer, each with the current guess; the same answers give the same list."""
        if k < 1:
            raise BinclsError(f"Ask for at least one suggestion; got {k}.")
        _, g, answered, labels, unavailable = self._state()
        picks = choose(self.x, answered, labels, unavailable, k, strategy)
        out = []
        for pick in picks:
            if g.model is None:  # no model yet: the class not answered so far is the better bet
                c = 0 if 0 not in labels else 1
                cls, p = c, 0.5
            else:
                cls, p = g.guess(pick.index)
            out.append(Suggestion(self.pile.paths[pick.index], self.classes[cls], p, pick.why))
        return out

    def guess_probabilities(self) -> np.ndarray:
        """P(second class) for every image of the pile, from the answers so far (NaN without a model)."""
        return self._state()[1].p1

    def labels_file(self) -> Path:
        """Where the app writes this session's labelled CSV: beside its answers, in bincls' cache folder
        (never in the pile's folders)."""
        names = "-vs-".join(re.sub(r"[^A-Za-z0-9_]+", "_", c).strip("_")[:24] or "class"
                            for c in self.classes)  # fmt: skip
        unique = self.store.path.stem.replace("answers-", "", 1)[:8]  # the pile's id: two piles, two files
        return self.store.path.with_name(f"labels-{names}-{unique}.csv")

    def status(self, cut: float = CONFIDENT) -> Status:
        entries, g, answered, labels, unavailable = self._state()
        free = np.setdiff1d(np.arange(len(self.pile.paths)), unavailable)
        estimate = accuracy_estimate(g, labels, free)
        return make_status(self, entries, g, estimate, free, cut)

    # Labels out ----------------------------------------------------------------------------------
    def accept_confident(self, cut: float | None = None) -> Applied:
        """Add every unlabelled image whose guess is at least `cut` probable as a label, marked as an
        accepted guess (not an answer); `forget` undoes it."""
        rows = self._confident(cut)
        return self.store.update({self._keys[i]: {"label": label, "how": "accepted", "from": "session",
                                                  "p": round(p, 4)} for i, label, p in rows})  # fmt: skip

    def _confident(self, cut: float | None) -> list[tuple[int, str, float]]:
        cut = CONFIDENT if cut is None else _check_cut(cut)
        _, g, _, _, unavailable = self._state()
        if g.model is None:
            return []
        free = np.setdiff1d(np.arange(len(self.pile.paths)), unavailable)
        rows = []
        for i in free[g.confident(cut)[free]]:
            cls, p = g.guess(int(i))
            rows.append((int(i), self.classes[cls], p))
        return rows

    def labels(self, accept: bool | float = False) -> list[tuple[str, str]]:
        """(path, class) for every answer and accepted guess, plus (with `accept`: True for the default cut,
        or a cut) every other image whose guess is that probable. Sorted by path."""
        out = {self.pile.paths[self._index[k]]: e["label"] for k, e in self.entries().items()
               if e.get("label") in self.classes}  # fmt: skip
        if accept is not False:
            cut = None if accept is True else float(accept)
            out.update({self.pile.paths[i]: label for i, label, _ in self._confident(cut)})
        return sorted(out.items())

    def export(self, out: str | os.PathLike, accept: bool | float = False) -> Path:
        """Write `labels(accept)` as a labelled CSV (path,label): data for `bincls train OUT.csv`."""
        rows = self.labels(accept)
        if not rows:
            raise BinclsError("Nothing to export yet: answer some images first.")
        return write_labelled_csv(out, rows)


def _check_cut(cut: float) -> float:
    if not (0.5 <= float(cut) <= 1.0):
        raise BinclsError(f"The confident cut must be a probability from 0.5 to 1; got {cut!r}.")
    return float(cut)
