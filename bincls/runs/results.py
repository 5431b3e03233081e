"""A run's evaluation on its own test split, kept beside it while it is of the run's current checkpoint."""

from __future__ import annotations

from pathlib import Path

from bincls.json_files import read_json, write_json_atomic
from bincls.runs.folder import RunFolder

# The run's own test split, evaluated at its saved threshold (written by `inference.evaluate`).
TEST_RESULT_FILE = "test_result.json"


def saved_test_result(run: RunFolder) -> dict | None:
    """The run's last evaluation on its own test split, when it is of the checkpoint the run has now."""
    result = read_json(run.path / TEST_RESULT_FILE)
    if not isinstance(result, dict):
        return None
    ckpt = run.path / str(result.get("checkpoint", ""))
    try:
        current = ckpt.is_file() and abs(ckpt.stat().st_mtime - float(result.get("checkpoint_mtime"))) < 1e-3
    except (TypeError, ValueError):
        return None
    return result if current else None


def keep_test_result(run: RunFolder, checkpoint: Path, metrics: dict) -> None:
    """Record an evaluation of the run's test split beside it (the Runs table shows it); a runs folder that
    cannot be written only loses the record."""
    keys = ("n", "accuracy", "balanced_accuracy", "auroc", "f1", "loss", "threshold", "p_std")
    record = {k: metrics.get(k) for k in keys} | {
        "checkpoint": checkpoint.name, "checkpoint_mtime": checkpoint.stat().st_mtime,
        "negatives": sum(metrics["confusion_matrix"][0]), "positives": sum(metrics["confusion_matrix"][1]),
    }  # fmt: skip
    try:
        write_json_atomic(run.path / TEST_RESULT_FILE, record)
    except OSError:
        pass
