"""A model's configuration: everything needed to rebuild it, saved in checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from bincls.errors import BinclsError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Scratch models see inputs scaled to [-1, 1]: no dataset statistics are needed to train them.
SCRATCH_MEAN = (0.5, 0.5, 0.5)
SCRATCH_STD = (0.5, 0.5, 0.5)
# Image sides every registered model takes (the seed CNNs shrink a 32 px image to their last feature map;
# above 1024 px a batch no longer fits a laptop). The settings schema and the checkpoint check read it.
IMG_SIZE_RANGE = (32, 1024)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; saved in checkpoints as `dataclasses.asdict(cfg)`."""

    name: str
    img_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str = "none"  # "none", "imagenet", or a path to a local state_dict file
    freeze_backbone: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        # A config read back from JSON has lists and maybe a Path; keep it hashable and comparable.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "weights", str(self.weights))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Rebuild a config saved with `dataclasses.asdict`, e.g. from a checkpoint."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise BinclsError(f"Model config has unknown settings {unknown}; expected only {sorted(names)}.")
        try:
            return cls(**d)
        except (TypeError, ValueError) as e:
            raise BinclsError(f"Model config {dict(d)} is incomplete or malformed: {e}") from e
