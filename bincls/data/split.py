"""Seeded, stratified, file-level train/val/test split, as a table a run saves and reloads."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bincls.data.folder_layout import SPLITS
from bincls.data.scan import ScanResult
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
        ratios = [self.train, self.val, self.test]
        if any(not np.isfinite(r) or r < 0 for r in ratios) or sum(ratios) <= 0:
            raise BinclsError(f"Split ratios must be non-negative numbers with a positive sum; got {ratios}.")
        if self.train <= 0:
            raise BinclsError("The train share of the split must be above 0.")
        total = sum(ratios)
        return SplitConfig(self.train / total, self.val / total, self.test / total, int(self.seed))


def _allocate(n: int, ratios: tuple[float, float, float]) -> list[int]:
    """How many of n go to train/val/test: rounded, and at least one for every non-zero share."""
    counts = [0, int(round(n * ratios[1])), int(round(n * ratios[2]))]
    for i in (1, 2):
        if ratios[i] > 0 and counts[i] == 0:
            counts[i] = 1
    counts[0] = n - counts[1] - counts[2]
    return counts


def make_split(scan: ScanResult, config: SplitConfig | None = None) -> pd.DataFrame:
    """Assign every usable image to train/val/test.

    A pre-split layout keeps its given split; when it has no validation folder, validation images
    are drawn from its train folder (stratified, seeded). Raises `BinclsError` when a class has too
    few images for the shares asked for.
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
    rows = []
    for label, name in enumerate(names):
        recs = [r for r in usable if r.label == label]
        if scan.layout.presplit:
            given = {s: [r for r in recs if r.given_split == s] for s in SPLITS}
            if not given["val"]:
                share = config.val / (config.train + config.val) if config.val > 0 else 0.2
                order = rng.permutation(len(given["train"]))
                n_val = max(1, int(round(len(order) * share))) if len(order) > 1 else 0
                pool = given["train"]
                given["val"] = [pool[i] for i in order[:n_val]]
                given["train"] = [pool[i] for i in order[n_val:]]
            for split, items in given.items():
                rows.extend((r.path, name, label, split) for r in items)
            continue
        counts = _allocate(len(recs), (config.train, config.val, config.test))
        order = rng.permutation(len(recs))
        start = 0
        for split, k in zip(SPLITS, counts):
            rows.extend((recs[i].path, name, label, split) for i in order[start : start + k])
            start += k
    df = pd.DataFrame(rows, columns=COLUMNS)
    _check_not_empty(df, names, scan.layout.presplit, config)
    return df.sort_values(["split", "label", "path"], key=_split_order).reset_index(drop=True)


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
