"""Seeded, stratified train/val/test split that keeps near-duplicates together, as a table a run saves."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from bincls.data.folder_layout import SPLITS
from bincls.data.scan import ImageRecord, ScanResult
from bincls.errors import BinclsError

COLUMNS = ["path", "class", "label", "split"]


@dataclass(frozen=True)
class SplitConfig:
    train: float = 0.7
    val: float = 0.2
    test: float = 0.1
    seed: int = 0

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> SplitConfig:
        """From the CLI's "0.7,0.2,0.1" (percentages like "70,20,10" work too)."""
        try:
            parts = [float(p) for p in str(text).split(",")]
        except ValueError:
            raise BinclsError(f"--split must be three numbers like 0.7,0.2,0.1; got {text!r}.") from None
        if len(parts) == 2:
            parts.append(0.0)
        if len(parts) != 3:
            raise BinclsError(f"--split must be three numbers like 0.7,0.2,0.1; got {text!r}.")
        return cls(*parts, seed=seed).normalized()

    def normalized(self) -> SplitConfig:
        """Shares that add up to 1, rounded to 9 decimals: normalizing twice gives the same shares, so
        the CLI's "0.7,0.2,0.1", the page's 70/20/10 and a run's saved config split alike."""
        ratios = [self.train, self.val, self.test]
        if any(not np.isfinite(r) or r < 0 for r in ratios) or sum(ratios) <= 0:
            raise BinclsError(f"Split ratios must be non-negative numbers with a positive sum; got {ratios}.")
        if self.train <= 0:
            raise BinclsError("The train share of the split must be above 0.")
        total = math.fsum(ratios)
        return SplitConfig(*(round(r / total, 9) for r in ratios), seed=int(self.seed))


def allocate(n: int, shares: tuple[float, float, float]) -> list[int]:
    """How many of n go to train/val/test: n x share rounded half up, computed exactly (a share's last
    bits of float noise must not flip a tie such as 135 x 0.1 = 13.5), at least one for every
    non-zero share, and train the rest."""
    exact = [Fraction(s).limit_denominator(10**9) for s in shares]
    counts = [0] + [math.floor(n * f + Fraction(1, 2)) for f in exact[1:]]
    for i in (1, 2):
        if shares[i] > 0 and counts[i] == 0:
            counts[i] = 1
    counts[0] = n - counts[1] - counts[2]
    return counts


def make_split(scan: ScanResult, config: SplitConfig | None = None) -> pd.DataFrame:
    """Assign every usable image to train/val/test: the one split the Data page, `bincls scan` and a
    run all use (through `bincls.data.dataset.split_data`).

    Stratified by class and seeded. The scan's near-duplicate groups stay whole on one side, so the
    same photo in two files never scores the test on what training saw. A pre-split layout keeps its
    given split; when it has no validation folder, validation images are drawn from its train folder
    (the same way). Raises `BinclsError` when a class has too few images for the shares asked for.
    """
    config = (config or SplitConfig()).normalized()
    usable = sorted(scan.usable, key=lambda r: r.path)
    names = scan.class_names
    for label, name in enumerate(names):
        if not any(r.label == label for r in usable):
            folders = ", ".join(f for f, _ in scan.layout.classes[label].folders)
            raise BinclsError(
                f"Class {name!r} has no usable images ({folders}). See the skipped files for why, "
                "and add images to that folder."
            )
    rng = np.random.default_rng(config.seed)
    if scan.layout.presplit:
        chosen = _presplit(usable, scan.near_duplicates, config, rng)
    else:
        chosen = _assign(usable, scan.near_duplicates, (config.train, config.val, config.test), rng)
    rows = [(r.path, names[r.label], r.label, chosen[r.path]) for r in usable]
    df = pd.DataFrame(rows, columns=COLUMNS)
    _check_not_empty(df, names, scan.layout.presplit, config)
    return df.sort_values(["split", "label", "path"], key=_split_order).reset_index(drop=True)


def _presplit(usable: list[ImageRecord], groups: list, config: SplitConfig,
              rng: np.random.Generator) -> dict[str, str]:  # fmt: skip
    """The given split; validation drawn from train (group-aware) when there is no val folder."""
    chosen = {r.path: r.given_split for r in usable}
    if any(s == "val" for s in chosen.values()):
        return chosen
    share = config.val / (config.train + config.val) if config.val > 0 else 0.2
    pool = [r for r in usable if r.given_split == "train"]
    chosen.update(_assign(pool, groups, (1 - share, share, 0.0), rng, at_least_one=False))
    return chosen


def _assign(records: list[ImageRecord], groups: list, shares: tuple[float, float, float],
            rng: np.random.Generator, at_least_one: bool = True) -> dict[str, str]:  # fmt: skip
    """{path: split} for `records` (sorted by path), per class: the allocated counts, in a seeded order.

    Near-duplicate groups go first, largest first, each whole to the split with the most room left
    for its classes; then single images fill train, val and test in the seeded order. Without groups
    this is a plain seeded shuffle cut at the allocated counts.
    """
    rank: dict[str, int] = {}
    room: dict[int, list[int]] = {}
    for label in sorted({r.label for r in records}):
        recs = [r for r in records if r.label == label]
        # (a pre-split train folder of one image keeps it in train)
        room[label] = allocate(len(recs), shares) if at_least_one or len(recs) > 1 else [len(recs), 0, 0]
        rank.update((recs[i].path, k) for k, i in enumerate(rng.permutation(len(recs))))
    by_path = {r.path: r for r in records}
    units = [[by_path[p] for p in g.paths if p in by_path] for g in groups]
    units = sorted((u for u in units if len(u) > 1), key=lambda u: (-len(u), min(rank[r.path] for r in u)))
    open_splits = [i for i, s in enumerate(shares) if s > 0]
    chosen: dict[str, str] = {}
    for unit in units:
        best = max(open_splits, key=lambda i: (sum(room[r.label][i] for r in unit), -i))
        for r in unit:
            room[r.label][best] -= 1
            chosen[r.path] = SPLITS[best]
    for r in sorted((r for r in records if r.path not in chosen), key=lambda r: (r.label, rank[r.path])):
        best = next(i for i in range(3) if room[r.label][i] > 0)
        room[r.label][best] -= 1
        chosen[r.path] = SPLITS[best]
    return chosen


def _split_order(col: pd.Series) -> pd.Series:
    return col.map({s: i for i, s in enumerate(SPLITS)}) if col.name == "split" else col


def _check_not_empty(df: pd.DataFrame, names: list[str], presplit: bool, config: SplitConfig) -> None:
    wanted = ["train", "val"] + (["test"] if config.test > 0 and not presplit else [])
    for split in wanted:
        for label, name in enumerate(names):
            if not ((df["split"] == split) & (df["label"] == label)).any():
                n = int((df["label"] == label).sum())
                raise BinclsError(
                    f"The {split} split would have no {name!r} images: class {name!r} has only {n} "
                    f"usable image(s). Add images, or change the split shares "
                    f"(now {config.train:.0%}/{config.val:.0%}/{config.test:.0%})."
                )


def split_counts(df: pd.DataFrame, class_names: list[str]) -> dict[str, dict[str, int]]:
    """{split: {class: n}} for every split, zeros included."""
    out = {}
    for split in SPLITS:
        part = df[df["split"] == split]
        out[split] = {name: int((part["label"] == i).sum()) for i, name in enumerate(class_names)}
    return out


def save_split(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write the split table as CSV, atomically. Every text field is quoted: Python's csv writer quotes a
    field holding a line break only when it is the line terminator ("\n"), and a file name may hold a
    carriage return (or any character but "/" and NUL); quoted, every name reads back as it was."""
    tmp = f"{os.fspath(path)}.{os.getpid()}.tmp"
    df[COLUMNS].to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC, encoding="utf-8")
    os.replace(tmp, path)


def load_split(path: str | os.PathLike) -> pd.DataFrame:
    """Read a split table back, checking that it is one."""
    try:
        df = pd.read_csv(path, dtype={"path": str, "class": str, "split": str}, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BinclsError(f"Cannot read the split table {path}: {exc}") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise BinclsError(f"The split table {path} lacks the column(s) {missing}; it needs {COLUMNS}.")
    bad = sorted(set(df["split"]) - set(SPLITS))
    if bad or not set(df["label"].unique()) <= {0, 1}:
        raise BinclsError(f"The split table {path} has unknown splits {bad} or labels other than 0/1.")
    return df[COLUMNS]
