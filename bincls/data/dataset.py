"""From user folders to datasets: scan, split, and the torch Dataset that reads the files."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
from torch.utils.data import Dataset

from bincls.data.folder_layout import Layout, resolve_layout
from bincls.data.images import load_rgb
from bincls.data.overlay import apply_overlay
from bincls.data.scan import Progress, ScanResult, scan_layout
from bincls.data.split import SplitConfig, make_split, split_counts


@dataclass
class DataSource:
    """A scanned and split dataset: what a run trains on."""

    scan: ScanResult
    split: pd.DataFrame  # path, class, label, split
    split_config: SplitConfig

    @property
    def layout(self) -> Layout:
        return self.scan.layout

    @property
    def class_names(self) -> list[str]:
        return self.scan.class_names

    def part(self, split: str) -> pd.DataFrame:
        return self.split[self.split["split"] == split].reset_index(drop=True)

    def counts(self) -> dict[str, dict[str, int]]:
        return split_counts(self.split, self.class_names)


def scan_folders(
    paths: list[str | os.PathLike],
    class_names: list[str] | None = None,
    progress: Progress | None = None,
    use_cache: bool = True,
) -> ScanResult:
    """Resolve what the user pointed at and check every file in it."""
    return scan_layout(resolve_layout(paths, class_names), progress, use_cache)


def split_data(
    scan: ScanResult, split: SplitConfig | None = None, decisions: dict[str, str] | None = None
) -> DataSource:
    """The split a run trains on, from a scan: the label audit's {path: keep|exclude|relabel}
    (bincls.data.overlay) applied, then `make_split`. The Data page, the Train page's header,
    `bincls scan` and a run all come through here, so what they show is what trains."""
    config = (split or SplitConfig()).normalized()
    scan = apply_overlay(scan, decisions or {})
    return DataSource(scan, make_split(scan, config), config)


def load_data(
    paths: list[str | os.PathLike],
    class_names: list[str] | None = None,
    split: SplitConfig | None = None,
    progress: Progress | None = None,
    decisions: dict[str, str] | None = None,
) -> DataSource:
    """Scan and split in one call: `load_data(["data/cats", "data/dogs"])` (see `split_data`)."""
    return split_data(scan_folders(paths, class_names, progress), split, decisions)


class ImageFileDataset(Dataset):
    """Reads image files listed in a split table; decodes exactly as the scan and prediction do."""

    def __init__(self, table: pd.DataFrame, transform: Callable, decode_side: int | None = None):
        self.paths = table["path"].tolist()
        self.labels = table["label"].astype(int).tolist()
        self.transform = transform
        # JPEG draft decoding only needs about the training size; 2x keeps resize quality.
        self.decode_side = decode_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = load_rgb(self.paths[i], max_side=self.decode_side)
        return self.transform(img), torch.tensor(float(self.labels[i]))
