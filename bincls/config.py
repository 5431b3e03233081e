"""The settings of a training run: validated, and saved as the run's config.json.

Kept free of torch so that the CLI can parse and check arguments without loading it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from bincls.errors import BinclsError

OPTIMIZERS = ("adam", "adamw", "sgd", "sgd-momentum")
SCHEDULES = ("cosine", "onecycle", "none")
DEVICES = ("auto", "cpu", "cuda", "mps")
RUN_KEYS = ("threshold",)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 1e-2, "sgd-momentum": 1e-2}


@dataclass
class TrainConfig:
    """Everything needed to repeat a run; saved as the run's config.json."""

    data: list[str]
    class_names: list[str] | None = None
    model: str = "small-cnn"
    weights: str = "none"
    freeze_backbone: bool = False
    img_size: int | None = None  # None: the model's default
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float | None = None  # None: the optimizer's default
    weight_decay: float = 0.0
    schedule: str = "cosine"
    patience: int = 5  # epochs without val-loss improvement before stopping; 0 turns it off
    split: list[float] = field(default_factory=lambda: [0.7, 0.2, 0.1])
    seed: int = 0
    device: str = "auto"
    augment: bool = True
    balance: bool = True  # pos_weight from the class balance
    workers: int | None = None  # DataLoader workers; None: chosen from the core count
    tensorboard: bool = False
    precision: str = "auto"  # auto, fp32, bf16, fp16 (auto: what measured fastest for the device and model)
    memory_budget: str | None = (
        None  # e.g. "4G": above it, images stream from disk (default: half of free RAM)
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Clear messages for values a user (or a hand-edited config.json) can get wrong."""

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise BinclsError(msg)

        need(
            isinstance(self.data, list) and 1 <= len(self.data) <= 2 and all(_is_text(p) for p in self.data),
            f"data must be 1 or 2 paths, got {self.data!r}",
        )
        need(
            self.class_names is None
            or (isinstance(self.class_names, list) and all(isinstance(n, str) for n in self.class_names)),
            f"class_names must be a list of two names, or null, got {self.class_names!r}",
        )
        need(_is_text(self.model), f"model must be a model name, got {self.model!r}")
        need(isinstance(self.weights, str), f"weights must be imagenet, none or a file, got {self.weights!r}")
        for name in ("freeze_backbone", "augment", "balance", "tensorboard"):
            value = getattr(self, name)
            need(isinstance(value, bool), f"{name} must be true or false, got {value!r}")
        need(
            _is_int(self.epochs) and self.epochs >= 1,
            f"epochs must be a whole number >= 1, got {self.epochs!r}",
        )
        need(
            _is_int(self.batch_size) and self.batch_size >= 1,
            f"batch_size must be a whole number >= 1, got {self.batch_size!r}",
        )
        need(
            self.img_size is None or (_is_int(self.img_size) and 16 <= self.img_size <= 1024),
            f"img_size must be a whole number from 16 to 1024, got {self.img_size!r}",
        )
        need(
            self.optimizer in OPTIMIZERS,
            f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}",
        )
        need(
            self.schedule in SCHEDULES,
            f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}",
        )
        need(self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}; got {self.device!r}")
        need(
            self.lr is None or (_is_num(self.lr) and 0 < self.lr < 10),
            f"lr must be a number in (0, 10), got {self.lr!r}",
        )
        need(
            _is_num(self.weight_decay) and self.weight_decay >= 0,
            f"weight_decay must be >= 0, got {self.weight_decay!r}",
        )
        need(
            _is_int(self.patience) and self.patience >= 0,
            f"patience must be a whole number >= 0, got {self.patience!r}",
        )
        need(_is_int(self.seed), f"seed must be a whole number, got {self.seed!r}")
        need(
            isinstance(self.split, (list, tuple))
            and len(self.split) == 3
            and all(_is_num(v) for v in self.split),
            f"split must be three numbers like [0.7, 0.2, 0.1], got {self.split!r}",
        )
        need(
            self.workers is None or (_is_int(self.workers) and self.workers >= 0),
            f"workers must be a whole number >= 0, got {self.workers!r}",
        )

        need(
            self.precision in PRECISIONS,
            f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}",
        )
        need(
            self.memory_budget is None or _is_size(self.memory_budget),
            f"memory_budget must be a size like 4G or 512M, got {self.memory_budget!r}",
        )

    @property
    def learning_rate(self) -> float:
        return float(self.lr if self.lr is not None else DEFAULT_LR[self.optimizer])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        if not isinstance(raw, dict):
            raise BinclsError(f"A run config must be a JSON object, got {type(raw).__name__}.")
        # Keys a run's config.json may carry that are not training settings (Evaluate saves the
        # decision threshold there).
        raw = {k: v for k, v in raw.items() if k not in RUN_KEYS}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise BinclsError(f"Unknown setting(s) in the run config: {', '.join(unknown)}.")
        no_default = dataclasses.MISSING
        required = [f.name for f in dataclasses.fields(cls) if no_default is f.default is f.default_factory]
        missing = [k for k in required if k not in raw]
        if missing:
            raise BinclsError(f"The run config is incomplete: it lacks the setting(s) {', '.join(missing)}.")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise BinclsError(f"The run config is incomplete or wrong: {exc}") from None


def read_run_config(path: str | os.PathLike) -> TrainConfig:
    """A run's config.json (file or run folder) as a checked `TrainConfig`.

    Raises `BinclsError` naming the file, and the setting when one is wrong (a hand-edited file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BinclsError(f"{path} cannot be read ({exc.strerror or exc}).") from None
    except ValueError as exc:
        raise BinclsError(f"{path} is not valid JSON ({exc}); fix it or delete the run.") from None
    try:
        return TrainConfig.from_dict(raw)
    except BinclsError as exc:
        raise BinclsError(f"{path}: {exc}") from None


def _is_text(v) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _is_size(v) -> bool:
    import re

    return isinstance(v, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*[KMGT]?B?\s*", v.upper()) is not None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
