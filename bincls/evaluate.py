"""Evaluate a trained model on its run's test split or on other folders: metrics and per-image results."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bincls.checkpoint import load_model, preprocess_of
from bincls.data import ImageFileDataset, scan_folders
from bincls.errors import BinclsError
from bincls.metrics import binary_metrics
from bincls.runs import RunFolder
from bincls.split import load_split
from bincls.train import predict_logits, resolve_device
from bincls.transforms import build_eval_transform


@dataclass
class Evaluation:
    metrics: dict
    table: pd.DataFrame  # path, true, predicted, probability (of class 1), loss
    class_names: list[str]
    source: str  # "test split", "val split", or the folders evaluated
    checkpoint: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            **self.metrics,
            "classes": self.class_names,
            "source": self.source,
            "checkpoint": self.checkpoint,
            "notes": self.notes,
        }


def find_checkpoint(run_or_ckpt: str | os.PathLike) -> tuple[Path, RunFolder | None]:
    """A checkpoint file as given, or a run folder's best.pt (last.pt when there is no best yet)."""
    p = Path(run_or_ckpt)
    if p.is_file():
        return p, (RunFolder(p.parent) if (p.parent / "status.json").exists() else None)
    if p.is_dir():
        run = RunFolder.open(p)
        for ckpt in (run.best_checkpoint, run.last_checkpoint):
            if ckpt.is_file():
                return ckpt, run
        raise BinclsError(
            f"Run {p} has no checkpoint yet (no best.pt or last.pt): it has not finished an epoch."
        )
    raise BinclsError(f"{p} does not exist: give a run folder or a .pt checkpoint.")


def _table_for_folders(paths: list[str], class_names: list[str]) -> pd.DataFrame:
    scan = scan_folders(paths)
    found = scan.class_names
    if sorted(found) != sorted(class_names):
        raise BinclsError(
            f"The folders hold classes {found}, but the model was trained on {class_names}. "
            "Give two class folders named like the model's classes."
        )
    remap = {i: class_names.index(name) for i, name in enumerate(found)}
    rows = [(r.path, class_names[remap[r.label]], remap[r.label]) for r in scan.usable]
    return pd.DataFrame(rows, columns=["path", "class", "label"])


def evaluate(
    run_or_ckpt: str | os.PathLike,
    data: list[str] | None = None,
    split: str = "test",
    threshold: float | None = None,
    device: str = "auto",
    batch_size: int = 32,
) -> Evaluation:
    """Metrics and a per-image table for a run's split (default test, else val) or for other folders."""
    ckpt_path, run = find_checkpoint(run_or_ckpt)
    dev = resolve_device(device)
    model, ckpt = load_model(ckpt_path, dev)
    names = ckpt["class_names"]
    notes: list[str] = []
    if threshold is None:
        saved = run.config().get("threshold") if run else None
        threshold = float(saved if saved is not None else ckpt.get("threshold", 0.5))
    if data:
        table, source = _table_for_folders(list(data), names), ", ".join(map(str, data))
    else:
        if run is None or not run.split_path.exists():
            raise BinclsError(
                f"{ckpt_path} is not inside a run folder with a split.csv; pass --data FOLDERS."
            )
        full = load_split(run.split_path)
        table = full[full["split"] == split]
        if table.empty and split == "test":
            split = "val"
            table = full[full["split"] == "val"]
            notes.append("This run has no test split (the data came with train/val only): evaluated on val.")
        source = f"{split} split"
    if table.empty:
        raise BinclsError(f"There are no images to evaluate in {source}.")
    ds = ImageFileDataset(
        table.reset_index(drop=True),
        build_eval_transform(preprocess_of(ckpt)),
        decode_side=preprocess_of(ckpt).img_size,
    )
    loader = DataLoader(ds, batch_size=batch_size, num_workers=min(2, os.cpu_count() or 1))
    logits, labels = predict_logits(model, loader, dev)
    metrics = binary_metrics(logits, labels, threshold=threshold)
    probs = torch.sigmoid(logits)
    losses = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
    out = pd.DataFrame(
        {
            "path": ds.paths,
            "true": [names[int(v)] for v in labels],
            "predicted": [names[int(p >= threshold)] for p in probs],
            "probability": probs.numpy(),
            "loss": losses.numpy(),
        }
    )
    return Evaluation(metrics, out, names, source, str(ckpt_path), notes)
