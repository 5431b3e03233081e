"""Work out what the user pointed at: two class folders, a root of two, or a pre-split root."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bincls.data.data_root import outside_reason, readable_roots
from bincls.data.file_access import is_junk_dir, is_utf8, readable
from bincls.data.labelled_csv import is_labelled_csv, read_labelled_csv
from bincls.errors import BinclsError

SPLITS = ("train", "val", "test")

# Folder names that mark a pre-split layout, mapped to our split names. The seeds use
# training/testing and training_set/test_set; Kaggle sets often use valid/validation.
SPLIT_DIR_NAMES = {
    "train": "train",
    "training": "train",
    "training_set": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
    "test_set": "test",
}


@dataclass(frozen=True)
class ClassSource:
    """One class: its name and the folder(s) its images come from, per given split."""

    name: str
    # (folder, split) pairs; split is None unless the layout was pre-split.
    folders: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class Layout:
    """The resolved input: exactly two classes, label 0 and label 1, in this order."""

    classes: tuple[ClassSource, ClassSource]
    presplit: bool
    kind: str  # "two-folders", "root", "presplit", "csv"
    roots: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())
    # A labelled CSV's images (kind "csv"): (path, label) and the rows left out, (where, reason)
    listing: tuple[tuple[str, int], ...] = field(default=(), repr=False, compare=False)
    unusable: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]


def _subdirs(path: Path) -> list[Path]:
    """The visible subfolders of `path` (links to folders included), each confined to the data root."""
    roots = readable_roots()
    try:
        entries = list(path.iterdir())
    except OSError as exc:
        raise BinclsError(f"Folder {path} cannot be read ({exc.strerror or exc}).") from None
    out = []
    for p in entries:
        try:
            if is_junk_dir(p.name) or not p.is_dir():
                continue
        except OSError:
            continue  # the walk of the parent lists what cannot be read
        reason = outside_reason(p, roots)
        if reason:
            raise BinclsError(
                f"Folder {p} is a link that {reason}. Remove the link, or choose folders inside it."
            )
        _check_utf8(p)
        out.append(p)
    return sorted(out, key=lambda p: p.name.lower())


def _check_utf8(p: Path) -> None:
    """Folder names become class names and paths in the run's own files: they must be text."""
    if not is_utf8(str(p)):
        raise BinclsError(f"Folder {readable(str(p))} has a name that is not UTF-8 text; rename it to use it")


def _check_dir(path: str | os.PathLike, what: str) -> Path:
    p = Path(os.path.expanduser(os.fspath(path)))
    _check_utf8(p)
    reason = outside_reason(p, readable_roots())
    if reason:
        raise BinclsError(f"{what} {p} {reason}; choose a folder inside it.")
    if not p.exists():
        if p.is_symlink():
            raise BinclsError(f"{what} {p} is a link to something that does not exist.")
        raise BinclsError(f"{what} {p} does not exist. Check the path (type it in full or pick it).")
    if not p.is_dir():
        raise BinclsError(f"{what} {p} is a file, not a folder. Give the folder that holds the images "
                          "(or a labelled CSV of path,label rows, named .csv).")  # fmt: skip
    try:
        next(p.iterdir(), None)
    except PermissionError:
        raise BinclsError(f"{what} {p} cannot be read (permission denied).") from None
    return Path(os.path.abspath(p))


def check_folder(path: str | os.PathLike, what: str = "Folder") -> Path:
    """`path` as an absolute folder that exists, can be read and lies inside the data root; else a
    `BinclsError` that says what is wrong with it (`what` names it: "Folder", "Pile folder")."""
    return _check_dir(path, what)


def _rename(names: list[str], class_names: list[str] | None) -> list[str]:
    if class_names is None:
        return names
    if len(class_names) != 2 or not all(isinstance(n, str) and n.strip() for n in class_names):
        raise BinclsError(f"Class names must be two non-empty names, got {class_names!r}.")
    clean = [n.strip() for n in class_names]
    if clean[0] == clean[1]:
        raise BinclsError(f"The two class names are the same ({clean[0]!r}); give two different names.")
    return clean


def resolve_layout(paths: list[str | os.PathLike], class_names: list[str] | None = None) -> Layout:
    """Turn one or two user-given paths (folders, or one labelled CSV) into a `Layout`, or raise
    `BinclsError` saying what to do."""
    if not paths or len(paths) > 2:
        raise BinclsError(
            f"Give two class folders, or one folder that holds them; got {len(paths or [])} paths."
        )
    if any(is_labelled_csv(p) for p in paths):
        if len(paths) != 1:
            raise BinclsError("A labelled CSV is the whole dataset: give it alone, without folders.")
        return _labelled_csv(paths[0], class_names)
    if len(paths) == 2:
        return _two_folders(paths, class_names)
    return _one_root(paths[0], class_names)


def _labelled_csv(path, class_names) -> Layout:
    """A CSV of path,label rows (bincls.data.labelled_csv): its two labels are the classes."""
    listed = read_labelled_csv(path)
    labels = listed.labels
    if len(labels) != 2:
        shown = ", ".join(repr(n) for n in labels[:6]) or "none"
        raise BinclsError(
            f"{listed.csv_path} must label its images with exactly two classes; its usable rows have "
            f"{len(labels)} ({shown}). Fix the label column (or give --names for two classes)."
        )
    names = _rename(labels, class_names)
    index = {name: i for i, name in enumerate(labels)}
    source = ((listed.csv_path, None),)
    return Layout(
        classes=(ClassSource(names[0], source), ClassSource(names[1], source)),
        presplit=False,
        kind="csv",
        roots=(listed.csv_path,),
        listing=tuple((image, index[label]) for image, label in listed.rows),
        unusable=listed.bad,
    )


def _two_folders(paths, class_names) -> Layout:
    a, b = (_check_dir(p, "Class folder") for p in paths)
    if a.resolve() == b.resolve():
        raise BinclsError(f"Both classes are the same folder ({a}). Pick a different folder for each class.")
    ra, rb = a.resolve(), b.resolve()
    if ra in rb.parents or rb in ra.parents:
        inner, outer = (b, a) if ra in rb.parents else (a, b)
        raise BinclsError(
            f"Class folder {inner} is inside the other class folder {outer}; its images would count "
            "for both classes. Pick two separate folders."
        )
    names = [a.name, b.name]
    if class_names is None and names[0] == names[1]:
        names = [f"{a.parent.name}/{a.name}", f"{b.parent.name}/{b.name}"]
    names = _rename(names, class_names)
    return Layout(
        classes=(ClassSource(names[0], ((str(a), None),)), ClassSource(names[1], ((str(b), None),))),
        presplit=False,
        kind="two-folders",
        roots=(str(a), str(b)),
    )


def _one_root(path, class_names) -> Layout:
    root = _check_dir(path, "Folder")
    notes: list[str] = []
    subs = _subdirs(root)
    # A zip often unpacks into one wrapper folder; look through it rather than fail.
    while len(subs) == 1 and subs[0].name.lower() not in SPLIT_DIR_NAMES and len(_subdirs(subs[0])) >= 2:
        notes.append(f"Looked inside {subs[0].name}/, the only folder in {root}.")
        root = subs[0]
        subs = _subdirs(root)
    split_dirs = [s for s in subs if s.name.lower() in SPLIT_DIR_NAMES]
    if split_dirs:
        return _presplit(root, subs, split_dirs, class_names, notes)
    if len(subs) != 2:
        found = ", ".join(s.name for s in subs[:10]) or "none"
        if len(subs) == 0:
            hint = (
                "It has no subfolders. Give a folder with exactly two class subfolders, or two class folders."
            )
        elif len(subs) == 1:
            hint = "It has only one class. Add a folder for the second class, or give two class folders."
        else:
            hint = "bincls trains two classes. Pick the two class folders you want."
        raise BinclsError(f"{root} must hold exactly two class folders; found {len(subs)} ({found}). {hint}")
    names = _rename([s.name for s in subs], class_names)
    return Layout(
        classes=(
            ClassSource(names[0], ((str(subs[0]), None),)),
            ClassSource(names[1], ((str(subs[1]), None),)),
        ),
        presplit=False,
        kind="root",
        roots=(str(root),),
        notes=tuple(notes),
    )


def _presplit(root: Path, subs, split_dirs, class_names, notes) -> Layout:
    others = [s.name for s in subs if s not in split_dirs]
    if others:
        notes.append(f"Ignored folders beside the split folders: {', '.join(others)}.")
    by_split: dict[str, Path] = {}
    for d in split_dirs:
        split = SPLIT_DIR_NAMES[d.name.lower()]
        if split in by_split:
            raise BinclsError(
                f"{root} has two folders for the {split} split ({by_split[split].name}, {d.name}). Keep one."
            )
        by_split[split] = d
    if "train" not in by_split:
        raise BinclsError(
            f"{root} looks pre-split ({', '.join(d.name for d in split_dirs)}) but has no train folder "
            "(train/, training/ or training_set/)."
        )
    class_sets = {}
    for split, d in by_split.items():
        names = [s.name for s in _subdirs(d)]
        if len(names) != 2:
            raise BinclsError(
                f"Split folder {d} must hold exactly two class folders; found {len(names)} "
                f"({', '.join(names) or 'none'})."
            )
        class_sets[split] = names
    train_names = class_sets["train"]
    for split, names in class_sets.items():
        if sorted(names) != sorted(train_names):
            raise BinclsError(
                f"Split folder {by_split[split]} has classes {names}, but {by_split['train']} has "
                f"{train_names}. Every split folder must hold the same two class folders."
            )
    order = [s for s in SPLITS if s in by_split]
    if "val" not in by_split:
        notes.append("No validation folder given: validation images are taken from train.")
    folders = [
        tuple((str(by_split[s] / cname), s) for s in order) for cname in train_names
    ]
    names = _rename(train_names, class_names)
    return Layout(
        classes=(ClassSource(names[0], folders[0]), ClassSource(names[1], folders[1])),
        presplit=True,
        kind="presplit",
        roots=(str(root),),
        notes=tuple(notes),
    )
