"""Load a checkpoint once and predict images: PIL images, paths or bytes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch
from PIL import Image

from bincls.checkpoint import load_model, preprocess_of
from bincls.errors import BinclsError
from bincls.images import ImageProblem, is_junk_name, load_rgb, to_rgb
from bincls.train import resolve_device
from bincls.transforms import build_eval_transform

ImageSource = str | os.PathLike | bytes | BinaryIO | Image.Image


@dataclass
class Prediction:
    source: str
    class_name: str | None  # None when the file could not be read
    probability: float | None  # of the predicted class
    p_class1: float | None  # probability of the second class (label 1)
    error: str | None = None


class Predictor:
    """A model loaded once, with the preprocessing it was trained with."""

    def __init__(self, checkpoint: str | os.PathLike, device: str = "auto", threshold: float | None = None):
        self.device = resolve_device(device)
        self.model, self.ckpt = load_model(checkpoint, self.device)
        self.class_names: list[str] = self.ckpt["class_names"]
        self.preprocess = preprocess_of(self.ckpt)
        self.transform = build_eval_transform(self.preprocess)
        self.threshold = float(threshold if threshold is not None else self.ckpt.get("threshold", 0.5))

    def to_tensor(self, source: ImageSource, name: str | None = None) -> torch.Tensor:
        img = (
            to_rgb(source, name or "image")
            if isinstance(source, Image.Image)
            else load_rgb(source, max_side=self.preprocess.img_size, name=name)
        )
        return self.transform(img)

    @torch.no_grad()
    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """P(class 1) for a batch of preprocessed tensors."""
        return torch.sigmoid(self.model(batch.to(self.device)).float()).view(-1).cpu()

    def _result(self, name: str, p1: float) -> Prediction:
        label = int(p1 >= self.threshold)
        return Prediction(name, self.class_names[label], p1 if label else 1 - p1, p1)

    def predict(self, source: ImageSource, name: str | None = None) -> Prediction:
        """One image; raises `BinclsError` (ImageProblem) when it is not a usable image."""
        name = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "image")
        x = self.to_tensor(source, name)
        return self._result(name, float(self.probabilities(x.unsqueeze(0))[0]))

    def predict_many(
        self, sources: list[ImageSource], names: list[str] | None = None, batch_size: int = 32
    ) -> list[Prediction]:
        """Many images; a bad one gets a Prediction with `error` and the others go on."""
        names = names or [
            os.fspath(s) if isinstance(s, (str, os.PathLike)) else f"image {i + 1}"
            for i, s in enumerate(sources)
        ]
        results: list[Prediction | None] = [None] * len(sources)
        pending: list[tuple[int, torch.Tensor]] = []

        def flush() -> None:
            if pending:
                probs = self.probabilities(torch.stack([t for _, t in pending]))
                for (i, _), p in zip(pending, probs):
                    results[i] = self._result(names[i], float(p))
                pending.clear()

        for i, src in enumerate(sources):
            try:
                pending.append((i, self.to_tensor(src, names[i])))
            except ImageProblem as exc:
                results[i] = Prediction(names[i], None, None, None, exc.reason)
            if len(pending) >= batch_size:
                flush()
        flush()
        return results  # type: ignore[return-value]


def expand_inputs(paths: list[str | os.PathLike]) -> list[str]:
    """Files as given, folders walked recursively (hidden and system files left out), in order."""
    out: list[str] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not is_junk_name(d))
                out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not is_junk_name(f))
        elif p.exists() or p.is_symlink():
            out.append(str(p))
        else:
            raise BinclsError(f"{p} does not exist.")
    return out
