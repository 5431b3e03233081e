"""Evaluate a trained model on its run's test split or on other folders: metrics, curves, per-image results.

`evaluate` runs the model once; everything a threshold changes (`at_threshold`) and the curves are then
computed from the saved logits, so a page can move a threshold slider without running the model again.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import (
    binary_calibration_error,
    binary_precision_recall_curve,
    binary_roc,
)

from bincls.checks import check_threshold
from bincls.compute import ComputePlan, resolve_device
from bincls.data.dataset import ImageFileDataset, scan_folders
from bincls.data.split import load_split
from bincls.data.transforms import build_eval_transform
from bincls.errors import BinclsError
from bincls.inference.calibration import calibration_error
from bincls.inference.intervals import auroc_interval, proportion_intervals
from bincls.inference.logits import predict_logits
from bincls.inference.metrics import binary_metrics
from bincls.inference.scoring import Scorer
from bincls.models.checkpoint import load_model, preprocess_of
from bincls.runs.folder import RunFolder, find_checkpoint  # noqa: F401  (callers import it from here too)
from bincls.runs.results import keep_test_result


@dataclass
class Evaluation:
    metrics: dict
    table: pd.DataFrame  # path, true, predicted, probability (of class 1), loss
    class_names: list[str]
    source: str  # "test split", "val split", or the folders evaluated
    checkpoint: str
    notes: list[str] = field(default_factory=list)
    logits: np.ndarray | None = None  # one per row of `table`, float32
    labels: np.ndarray | None = None  # 0 / 1 per row of `table`
    run_path: str | None = None  # the run folder the checkpoint sits in, if any

    @property
    def threshold(self) -> float:
        return float(self.metrics.get("threshold", 0.5))

    def results_csv(self) -> bytes:
        """The per-image results as CSV: path, true, predicted, probability (of the second class)."""
        return self.table[["path", "true", "predicted", "probability"]].to_csv(index=False).encode("utf-8")

    def to_dict(self) -> dict:
        return {
            **self.metrics,
            "classes": self.class_names,
            "source": self.source,
            "checkpoint": self.checkpoint,
            "notes": self.notes,
        }


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


def _table_for_split(run, ckpt_path, split: str, notes: list[str]) -> tuple[pd.DataFrame, str]:
    """The run's images of `split`, and the split used: val when the data came without a test split."""
    if run is None or not run.split_path.exists():
        raise BinclsError(f"{ckpt_path} is not inside a run folder with a split.csv; pass --data FOLDERS.")
    full = load_split(run.split_path)
    table = full[full["split"] == split]
    if table.empty and split == "test":
        split = "val"
        table = full[full["split"] == "val"]
        notes.append("This run has no test split (the data came with train/val only): evaluated on val.")
    return table, split


def evaluate(
    run_or_ckpt: str | os.PathLike,
    data: list[str] | None = None,
    split: str = "test",
    threshold: float | None = None,
    device: str = "auto",
    batch_size: int = 32,
    tta: bool | None = None,
) -> Evaluation:
    """Metrics and a per-image table for a run's split (default test, else val) or for other folders.

    Probabilities are the calibrated ones (the checkpoint's temperature and bias); `tta` overrides the
    checkpoint's choice of mirror-image test-time augmentation.
    """
    ckpt_path, run = find_checkpoint(run_or_ckpt)
    dev = resolve_device(device)
    model, ckpt = load_model(ckpt_path, dev)
    names = ckpt["class_names"]
    notes: list[str] = []
    own_threshold = threshold is None
    if threshold is None:
        threshold = saved_threshold(run, ckpt)  # a hand-edited, unusable value falls back
    else:
        threshold = check_threshold(threshold)  # NaN would silently predict one class for everything
    if data:
        table, source = _table_for_folders(list(data), names), ", ".join(map(str, data))
    else:
        table, split = _table_for_split(run, ckpt_path, split, notes)
        source = f"{split} split"
    if table.empty:
        raise BinclsError(f"There are no images to evaluate in {source}.")
    ds = ImageFileDataset(
        table.reset_index(drop=True),
        build_eval_transform(preprocess_of(ckpt)),
        decode_side=preprocess_of(ckpt).img_size,
    )
    loader = DataLoader(ds, batch_size=batch_size, num_workers=min(2, os.cpu_count() or 1))
    # Through the Scorer, as prediction, export and the server score: the checkpoint's TTA and
    # temperature apply, so these metrics describe the probabilities a user gets.
    scorer = Scorer.from_checkpoint(model, ckpt, tta)
    plan = ComputePlan(dev, None, False, "fp32, as prediction")
    raw, labels = predict_logits(scorer, loader, plan, lambda m, x: m(x)[0])
    logits = scorer.calibrate(raw)
    probs = torch.sigmoid(logits)
    metrics = binary_metrics(logits, labels, threshold=threshold)
    metrics.update(proportion_intervals(metrics["confusion_matrix"]))
    metrics.update(  # what does not depend on the threshold: at_threshold carries it over
        auroc_ci=auroc_interval(probs.numpy(), labels.numpy()),
        ece=calibration_error(probs, labels), ece_uncalibrated=calibration_error(torch.sigmoid(raw), labels),
        temperature=scorer.temperature, logit_bias=scorer.bias, tta=scorer.tta,
    )  # fmt: skip
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
    if run is not None and not data and split == "test" and own_threshold and tta is None:
        keep_test_result(run, Path(ckpt_path), metrics)  # the Runs table's test accuracy
    return Evaluation(
        metrics,
        out,
        names,
        source,
        str(ckpt_path),
        notes,
        logits=logits.numpy().astype(np.float32),
        labels=labels.numpy().astype(np.int64),
        run_path=str(run.path) if run else None,
    )


def _tensors(ev: Evaluation) -> tuple[torch.Tensor, torch.Tensor]:
    if ev.logits is None or ev.labels is None:
        raise BinclsError("This evaluation has no saved logits: run evaluate() again.")
    return torch.from_numpy(np.asarray(ev.logits, dtype=np.float32)), torch.from_numpy(np.asarray(ev.labels))


THRESHOLD_FREE = ("auroc_ci", "ece", "ece_uncalibrated", "temperature", "logit_bias", "tta")


def at_threshold(ev: Evaluation, threshold: float) -> Evaluation:
    """The same evaluation at another decision threshold, without running the model again."""
    threshold = check_threshold(threshold)
    logits, labels = _tensors(ev)
    metrics = binary_metrics(logits, labels, threshold=threshold)
    metrics.update(proportion_intervals(metrics["confusion_matrix"]))
    metrics.update({k: ev.metrics[k] for k in THRESHOLD_FREE if k in ev.metrics})
    table = ev.table.copy()
    table["predicted"] = [ev.class_names[int(p >= threshold)] for p in table["probability"]]
    return dataclasses.replace(ev, metrics=metrics, table=table)


def both_classes(ev: Evaluation) -> bool:
    """ROC and precision-recall curves need at least one image of each class."""
    return ev.labels is not None and len(set(np.asarray(ev.labels).tolist())) == 2


def roc_curve(ev: Evaluation) -> pd.DataFrame:
    """fpr, tpr and the threshold (probability of the second class) of each point, by torchmetrics."""
    logits, labels = _tensors(ev)
    fpr, tpr, thr = binary_roc(torch.sigmoid(logits), labels.long())
    return pd.DataFrame({"fpr": fpr.numpy(), "tpr": tpr.numpy(), "threshold": thr.numpy()})


def pr_curve(ev: Evaluation) -> pd.DataFrame:
    """precision, recall and the threshold of each point; the last point (recall 0) has no threshold."""
    logits, labels = _tensors(ev)
    precision, recall, thr = binary_precision_recall_curve(torch.sigmoid(logits), labels.long())
    thresholds = np.append(thr.numpy(), np.nan)
    return pd.DataFrame({"recall": recall.numpy(), "precision": precision.numpy(), "threshold": thresholds})


def calibration(ev: Evaluation, bins: int = 10, calibrated: bool = True) -> tuple[pd.DataFrame, float]:
    """Reliability table (equal-width bins of P(second class) vs how often it really was that class)
    and the expected calibration error (torchmetrics, same bins). `calibrated=False`: of the model's
    raw probabilities, before the checkpoint's temperature and bias."""
    logits, labels = _tensors(ev)
    if not calibrated:  # undo Scorer.calibrate: the saved logits are raw / temperature + bias
        m = ev.metrics
        logits = (logits - float(m.get("logit_bias", 0.0))) * float(m.get("temperature", 1.0))
    probs = torch.sigmoid(logits).numpy()
    y = labels.numpy()
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        rows.append({
            "bin_low": edges[b], "bin_high": edges[b + 1], "count": n,
            "mean_probability": float(probs[inside].mean()) if n else math.nan,
            "observed": float(y[inside].mean()) if n else math.nan,
        })  # fmt: skip
    ece = binary_calibration_error(torch.sigmoid(logits), labels.long(), n_bins=bins, norm="l1").item()
    return pd.DataFrame(rows), float(ece)


def most_wrong(ev: Evaluation, k: int = 12) -> pd.DataFrame:
    """The k misclassified images with the highest loss: the ones the model was most confidently wrong
    about (a right answer is never listed, however unsure)."""
    wrong = ev.table[ev.table["true"] != ev.table["predicted"]]
    return wrong.sort_values("loss", ascending=False).head(k).reset_index(drop=True)


def cell_images(ev: Evaluation, true: str, predicted: str) -> pd.DataFrame:
    """The rows of one confusion-matrix cell, worst first."""
    t = ev.table
    return t[(t["true"] == true) & (t["predicted"] == predicted)].sort_values("loss", ascending=False)


def save_threshold(run_or_ckpt: str | os.PathLike, threshold: float) -> Path:
    """Store the decision threshold in the run folder's config.json, where evaluate and predict read it."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise BinclsError(f"The threshold must be a probability in [0, 1], got {threshold}.")
    _, run = find_checkpoint(run_or_ckpt)
    if run is None:
        raise BinclsError(f"{run_or_ckpt} is not in a run folder: a threshold can only be saved into a run.")
    cfg = run.config()
    cfg["threshold"] = round(float(threshold), 4)
    run.write_config(cfg)
    return run.path / "config.json"


def saved_threshold(run: RunFolder | None, ckpt: dict | None = None) -> float:
    """The run's saved threshold, else the checkpoint's, else 0.5."""
    saved = run.config().get("threshold") if run else None
    if saved is None and ckpt is not None:
        saved = ckpt.get("threshold")
    try:
        value = float(saved if saved is not None else 0.5)
    except (TypeError, ValueError):
        return 0.5
    return value if 0.0 <= value <= 1.0 else 0.5
