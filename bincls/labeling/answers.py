"""A session's answers: one `KeyedStore` in bincls' cache folder per pile and pair of classes.

Each entry, keyed by the image's resolved path: {"label": a class, "skip" or "neither", "how": "answer"
or "accepted" (a confident guess the person accepted, not an answer), "from": "session" (answered in the
app or from Python) or "file" (imported from an answers CSV)}. The user's files are never touched.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from bincls.data.keyed_store import Applied, KeyedStore, path_key
from bincls.data.labelled_csv import NOT_CLASSES, read_labelled_csv
from bincls.errors import BinclsError
from bincls.paths import cache_dir

SKIP, NEITHER = NOT_CLASSES
WHAT = "labelling answers"


def check_classes(classes: list[str] | tuple[str, ...]) -> tuple[str, str]:
    """Two class names that can be told apart and are not "skip" or "neither"; else a `BinclsError`."""
    names = [str(c).strip() for c in (classes or [])]
    if len(names) != 2 or not all(names):
        raise BinclsError(f"Name the two classes (--classes A B); got {list(classes or [])!r}.")
    if names[0].lower() == names[1].lower():
        raise BinclsError(f"The two classes must have different names; got {names[0]!r} twice.")
    reserved = [n for n in names if n.lower() in NOT_CLASSES]
    if reserved:
        raise BinclsError(f"{reserved[0]!r} cannot be a class: skip and neither are answers.")
    if any(ch in n for n in names for ch in "\n\r\0"):
        raise BinclsError("A class name must be one line of text.")
    return names[0], names[1]


def store_for(pile_identity: str, classes: tuple[str, str]) -> KeyedStore:
    """The answers of this pile for this pair of classes (in either order)."""
    pair = hashlib.sha256("\0".join(sorted(classes)).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return KeyedStore(cache_dir() / "labeling" / f"answers-{pile_identity}-{pair}.json", WHAT)


def normal_label(label: str, classes: tuple[str, str]) -> str | None:
    """The class name as the session spells it, or "skip" / "neither"; None for anything else."""
    text = str(label).strip()
    for name in (*classes, *NOT_CLASSES):
        if text.lower() == name.lower():
            return name
    return None


def answer_entry(label: str, source: str = "session") -> dict:
    return {"label": label, "how": "answer", "from": source}


@dataclass
class Imported:
    """What importing an answers CSV did."""

    applied: Applied
    used: int = 0
    not_in_pile: list[str] = field(default_factory=list)
    bad_rows: list[tuple[str, str]] = field(default_factory=list)


def import_answers(store: KeyedStore, csv_path: str | os.PathLike, classes: tuple[str, str],
                   in_pile: set[str]) -> Imported:  # fmt: skip
    """The answers in `csv_path` (path,label) into the session. They replace what the previous import
    brought in (answers given in the app stay), so a call depends on the file, not on earlier imports."""
    listed = read_labelled_csv(csv_path, answers=True)
    incoming: dict[str, str] = {}
    out = Imported(Applied(), bad_rows=list(listed.bad))
    for path, label in listed.rows:
        name = normal_label(label, classes)
        if name is None:
            out.bad_rows.append((path, f"label {label!r} is not {classes[0]}, {classes[1]}, skip or neither"))
            continue
        key = path_key(path)
        if key not in in_pile:
            out.not_in_pile.append(path)
            continue
        incoming[key] = name
    out.used = len(incoming)

    def changes(current: dict) -> dict:
        gone = {k: None for k, v in current.items() if isinstance(v, dict) and v.get("from") == "file"}
        return {**gone, **{k: answer_entry(label, "file") for k, label in incoming.items()}}

    out.applied = store.update_with(changes, meta={"classes": list(classes)})
    return out
