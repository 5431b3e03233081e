"""A labelled CSV as data: rows of `path,label`, wherever two class folders are accepted.

Paths are relative to the CSV's folder or absolute; `BINCLS_DATA_ROOT` confinement applies to every one.
A row that cannot be used is listed with the reason (the scan shows it with the skipped files), never a
crash: no path, no label, a label that is not a class ("skip", "neither": a labelling session's answers
that are not classes), a path outside the data root, the same image twice with two labels. The file
itself must hold exactly two class labels.
"""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bincls.data.data_root import outside_reason, readable_roots
from bincls.errors import BinclsError

NOT_CLASSES = ("skip", "neither")
# csv's own limit is 128 KiB a field; a path is at most 4 KiB on Linux, so a longer field is not a path
FIELD_LIMIT = 1 << 16


@dataclass(frozen=True)
class LabelledRows:
    """The usable rows of a labelled CSV, in file order, and the others with the reason."""

    csv_path: str
    rows: tuple[tuple[str, str], ...]  # (absolute image path, label)
    bad: tuple[tuple[str, str], ...]  # ("FILE row N: PATH", reason)

    @property
    def labels(self) -> list[str]:
        """The distinct labels, sorted as class folders are (case-insensitively)."""
        return sorted({label for _, label in self.rows}, key=lambda s: (s.lower(), s))


def is_labelled_csv(path: str | os.PathLike) -> bool:
    """True when `path` names a CSV file rather than a folder: it ends in .csv and is not a folder."""
    p = os.fspath(path)
    return p.lower().endswith(".csv") and not os.path.isdir(p)


def _header(reader, path: Path, answers: bool) -> tuple[int, int, list[str] | None]:
    """(path column, label column, the first row when it is data rather than a header)."""
    try:
        header = next(reader)
    except StopIteration:
        if answers:  # no answers yet
            return 0, 1, None
        raise BinclsError(f"{path} is empty: a labelled CSV starts with the header path,label.") from None
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    if "path" in names and "label" in names:
        return names.index("path"), names.index("label"), None
    if answers and len(header) >= 2:  # answers written without a header: path, label
        return 0, 1, header
    raise BinclsError(f"{path} has no path and label columns (its first row is {header[:4]!r}); a "
                      "labelled CSV starts with the header path,label.")  # fmt: skip


def read_labelled_csv(path: str | os.PathLike, answers: bool = False) -> LabelledRows:
    """Read and check a labelled CSV (see the module); `BinclsError` when it is not one at all.
    `answers`: a labelling session's answers, where "skip" and "neither" are labels too."""
    p = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    roots = readable_roots()
    reason = outside_reason(p, roots)
    if reason:
        raise BinclsError(f"Labelled CSV {p} {reason}; choose a file inside it.")
    base = p.parent
    rows: list[tuple[str, str]] = []
    bad: list[tuple[str, str]] = []
    first_row: dict[str, tuple[int, str]] = {}
    csv.field_size_limit(FIELD_LIMIT)
    try:
        with open(p, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            col_path, col_label, first = _header(reader, p, answers)
            rows_in = reader if first is None else itertools.chain([first], reader)
            for number, fields in enumerate(rows_in, start=2 if first is None else 1):
                where = f"{p.name} row {number}"
                got = _row(fields, col_path, col_label, base, roots, answers)
                if isinstance(got, str):
                    if got:  # "" is a blank line: nothing to say
                        bad.append((f"{where}: {_field(fields, col_path)}", got))
                    continue
                image, label = got
                if image in first_row:
                    seen_at, seen_label = first_row[image]
                    why = (f"the same image as row {seen_at}" if seen_label == label else
                           f"labelled {seen_label!r} in row {seen_at} and {label!r} here: left out")
                    bad.append((f"{where}: {image}", why))
                    if seen_label != label:
                        rows = [(i, lab) for i, lab in rows if i != image]
                    continue
                first_row[image] = (number, label)
                rows.append((image, label))
    except FileNotFoundError:
        raise BinclsError(f"Labelled CSV {p} does not exist. Check the path.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BinclsError(f"Labelled CSV {p} cannot be read ({exc}). Save it as UTF-8 CSV with the "
                          "header path,label.") from None  # fmt: skip
    return LabelledRows(str(p), tuple(rows), tuple(bad))


def _field(fields: list[str], i: int) -> str:
    return fields[i] if i < len(fields) else ""


def _row(fields: list[str], col_path: int, col_label: int, base: Path, roots,
         answers: bool) -> tuple[str, str] | str:  # fmt: skip
    """(absolute path, label), or the reason the row is not used ("" for a blank line)."""
    if not any(f.strip() for f in fields):
        return ""
    # The path as written: a file name may begin or end with a space
    raw, label = _field(fields, col_path), _field(fields, col_label).strip()
    if not raw.strip():
        return "no path"
    if not label:
        return "no label"
    if label.lower() in NOT_CLASSES:
        if answers:
            label = label.lower()
        else:
            return f"label {label!r} is not a class (a labelling answer that leaves the image out)"
    if "\x00" in raw:
        return "the path holds a NUL character"
    image = os.path.abspath(os.path.join(base, os.path.expanduser(raw)))
    reason = outside_reason(image, roots)
    return f"{reason}; not read" if reason else (image, label)


def write_labelled_csv(path: str | os.PathLike, rows: Iterable[tuple[str, str]]) -> Path:
    """Write `path,label` rows (absolute paths, every field quoted: a file name may hold a line break),
    atomically; returns the file."""
    p = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, quoting=csv.QUOTE_ALL)
            writer.writerow(["path", "label"])
            writer.writerows(rows)
        os.replace(tmp, p)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return p
