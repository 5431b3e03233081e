"""Continue training a finished run: warm start from its best weights in a new run folder, on the old
split for the images it had (new images are split with the same seed and shares)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from bincls.data.dataset import DataSource
from bincls.data.split import load_split
from bincls.errors import BinclsError
from bincls.models.checkpoint import model_config_of, read_checkpoint
from bincls.training.config import TrainConfig
from bincls.training.events import Emitter


def _checkpoint_path(init_from: str) -> Path:
    p = Path(init_from).expanduser()
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise BinclsError(f"{p} has no checkpoint (best.pt or last.pt) to continue from.")
    if p.is_file():
        return p
    raise BinclsError(f"{p} does not exist: --continue-from takes a run folder or a checkpoint.")


def continued_config(cfg: TrainConfig) -> TrainConfig:
    """The architecture, input size and pretrained setting come from the checkpoint continued from."""
    ckpt = read_checkpoint(_checkpoint_path(cfg.init_from))
    mcfg = model_config_of(ckpt)
    if cfg.model not in (None, mcfg.name):
        raise BinclsError(f"--continue-from {cfg.init_from} holds a {mcfg.name}, not a {cfg.model}.")
    weights = "imagenet" if mcfg.weights != "none" else "none"  # rebuilt the same way, then overwritten
    return dataclasses.replace(cfg, model=mcfg.name, img_size=mcfg.img_size, weights=weights)


def load_initial_weights(model, init_from: str) -> None:
    ckpt = read_checkpoint(_checkpoint_path(init_from))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise BinclsError(f"The checkpoint in {init_from} does not fit the model: {exc}") from None


def _one_split_per_path(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The table with each path once; a path listed in two splits (a hand-edited file) is refused."""
    rows = table.drop_duplicates(["path", "split"])
    twice = rows["path"][rows["path"].duplicated()]
    if len(twice):
        raise BinclsError(f"{path} lists {twice.iloc[0]} in two splits ({len(twice)} such path(s)): fix or "
                          "delete that split.csv, then continue again.")  # fmt: skip
    return rows.drop_duplicates("path")


def continued_split(data: DataSource, init_from: str, emit: Emitter) -> DataSource:
    """The old run's split for the images it had; the fresh split's assignment for new images."""
    run_dir = _checkpoint_path(init_from).parent
    old_path = run_dir / "split.csv"
    if not old_path.is_file():
        emit("message", f"{run_dir} has no split.csv: the continued run splits its images afresh")
        return data
    old = _one_split_per_path(load_split(old_path), old_path).set_index("path")["split"]
    fresh = data.split.copy()
    kept = fresh["path"].isin(old.index)
    fresh.loc[kept, "split"] = fresh.loc[kept, "path"].map(old)
    emit("message", f"continuing {run_dir.name}: {int(kept.sum())} images keep their split, "
                    f"{int((~kept).sum())} new images are split afresh")  # fmt: skip
    return DataSource(data.scan, pd.DataFrame(fresh).reset_index(drop=True), data.split_config)
