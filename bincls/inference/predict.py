"""Load a checkpoint once and predict images (PIL images, paths or bytes), with Grad-CAM maps on demand."""

from __future__ import annotations

import base64
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image

from bincls.checks import check_threshold
from bincls.compute import resolve_device
from bincls.data.file_access import walk_files
from bincls.data.images import MAX_FILE_BYTES, ImageProblem, load_rgb, to_rgb
from bincls.data.transforms import build_eval_transform
from bincls.errors import BinclsError
from bincls.inference.evaluate import saved_threshold
from bincls.inference.scoring import Scorer
from bincls.models.checkpoint import load_model, preprocess_of
from bincls.runs.folder import RunFolder, find_checkpoint

ImageSource = str | os.PathLike | bytes | BinaryIO | Image.Image


@dataclass
class Prediction:
    source: str
    class_name: str | None  # None when the file could not be read
    probability: float | None  # of the predicted class
    p_class1: float | None  # probability of the second class (label 1)
    error: str | None = None
    ood: bool | None = None  # True: unlike the training images (None: the model has no detector)
    ood_score: float | None = None  # higher: less like the training images


@dataclass
class Explained:
    """One image's prediction with the image itself (display size) and its Grad-CAM map, for a page."""

    prediction: Prediction
    image: Image.Image | None = None  # RGB, at most `display_side` on its longer side; None when unreadable
    heatmap: np.ndarray | None = None  # [S, S] in [0, 1], the model's input size: evidence for the prediction

    def overlay(self, alpha: float = 0.45) -> Image.Image | None:
        from bincls.inference.explain import overlay

        if self.image is None or self.heatmap is None:
            return None
        return overlay(self.image, self.heatmap, alpha=alpha)


def _check_bytes(data: bytes, name: str) -> None:
    if not data:
        raise ImageProblem(name, "empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        mb = 2**20
        raise ImageProblem(name, f"too large ({len(data) / mb:,.0f} MB, limit {MAX_FILE_BYTES / mb:,.0f} MB)")


class Predictor:
    """A model loaded once, with the preprocessing it was trained with.

    The decision threshold is, in order: the one given, the one saved in the run folder the checkpoint
    sits in (config.json "threshold", set on the Evaluate page), the checkpoint's own (chosen on the
    validation split at the end of training). Probabilities are calibrated; `tta` overrides the
    checkpoint's choice of mirror-image test-time augmentation.
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str = "auto", threshold: float | None = None,
                 tta: bool | None = None, checkpoint_bytes: bytes | None = None):  # fmt: skip
        self.device = resolve_device(device)
        if checkpoint_bytes is None:  # a run folder stands for its best checkpoint, as everywhere else
            checkpoint, _ = find_checkpoint(checkpoint)
        self.checkpoint = Path(checkpoint)
        # `checkpoint_bytes`: the file's content read once by the caller (an export records its hash).
        self.model, self.ckpt = load_model(checkpoint, self.device, checkpoint_bytes)
        self.class_names: list[str] = self.ckpt["class_names"]
        self.preprocess = preprocess_of(self.ckpt)
        self.transform = build_eval_transform(self.preprocess)
        folder = self.checkpoint.parent
        self.run = RunFolder(folder) if (folder / "status.json").exists() else None
        given = threshold is not None  # a NaN would silently predict the first class for every image
        self.threshold = check_threshold(threshold) if given else saved_threshold(self.run, self.ckpt)
        self.scorer = Scorer.from_checkpoint(self.model, self.ckpt, tta)
        self._gradcam = None
        self._cam_lock = threading.Lock()

    @property
    def gradcam(self):
        """The Grad-CAM explainer, built on first use (it runs one dummy image to find its layer)."""
        if self._gradcam is None:
            from bincls.inference.explain import GradCam

            self._gradcam = GradCam(self.model, self.preprocess.img_size)
        return self._gradcam

    def heatmaps(self, batch: torch.Tensor, labels: list[int]) -> np.ndarray:
        """Grad-CAM maps [B, S, S] in [0, 1]: evidence for `labels` (usually the predicted classes)."""
        # captum hooks the shared model while it runs: one attribution at a time (the app shares a Predictor).
        with self._cam_lock:
            return self.gradcam(batch, labels)

    def to_tensor(self, source: ImageSource, name: str | None = None) -> torch.Tensor:
        if isinstance(source, bytes):
            _check_bytes(source, name or "upload")
        # The whole file is decoded (no reduced-size JPEG decoding): then any program that feeds PIL's
        # pixels to the exported ONNX gets this answer (draft decoding moved P by up to 0.03 on large photos).
        if isinstance(source, Image.Image):
            return self.transform(to_rgb(source, name or "image"))
        return self.transform(load_rgb(source, name=name))

    @torch.no_grad()
    def scores(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P(class 1), out-of-distribution score) for a batch of preprocessed tensors."""
        _, prob, ood = self.scorer(batch.to(self.device))
        return prob.float().cpu(), ood.float().cpu()

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """P(class 1) for a batch of preprocessed tensors."""
        return self.scores(batch)[0]

    def _result(self, name: str, p1: float, ood_score: float | None = None) -> Prediction:
        label = int(p1 >= self.threshold)
        flagged = None
        if self.scorer.has_ood and ood_score is not None:
            flagged = bool(ood_score > self.scorer.ood_threshold)
        score = ood_score if self.scorer.has_ood else None
        return Prediction(name, self.class_names[label], p1 if label else 1 - p1, p1, None, flagged, score)

    def predict(self, source: ImageSource, name: str | None = None) -> Prediction:
        """One image; raises `BinclsError` (ImageProblem) when it is not a usable image."""
        name = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "image")
        x = self.to_tensor(source, name)
        probs, ood = self.scores(x.unsqueeze(0))
        return self._result(name, float(probs[0]), float(ood[0]))

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
                probs, ood = self.scores(torch.stack([t for _, t in pending]))
                for (i, _), p, o in zip(pending, probs, ood):
                    results[i] = self._result(names[i], float(p), float(o))
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

    def predict_explained(
        self, sources: list[ImageSource], names: list[str] | None = None, heatmaps: bool = True,
        display_side: int = 448, batch_size: int = 16,
    ) -> list[Explained]:
        """Like `predict_many`, plus each image at display size and (optionally) its Grad-CAM map.

        The model sees each image exactly as `predict` would; a bad file gets its message and the
        others go on. File-like sources are read once into bytes, so nothing is re-read from a path
        the caller did not give.
        """
        sources = [s.read() if hasattr(s, "read") else s for s in sources]
        names = names or [os.fspath(s) if isinstance(s, (str, os.PathLike)) else f"image {i + 1}"
                          for i, s in enumerate(sources)]
        out: list[Explained | None] = [None] * len(sources)
        pending: list[tuple[int, torch.Tensor, Image.Image]] = []

        def flush() -> None:
            if not pending:
                return
            batch = torch.stack([t for _, t, _ in pending])
            probs, ood = self.scores(batch)
            preds = [
                self._result(names[i], float(p), float(o)) for (i, _, _), p, o in zip(pending, probs, ood)
            ]
            labels = [int(p.p_class1 >= self.threshold) for p in preds]
            maps = self.heatmaps(batch, labels) if heatmaps else None
            for k, ((i, _, img), pred) in enumerate(zip(pending, preds)):
                out[i] = Explained(pred, img, None if maps is None else maps[k])
            pending.clear()

        for i, src in enumerate(sources):
            try:
                tensor = self.to_tensor(src, names[i])
                if isinstance(src, Image.Image):
                    shown = to_rgb(src, names[i]).copy()
                else:
                    shown = load_rgb(src, max_side=display_side, name=names[i])
                shown.thumbnail((display_side, display_side))
                pending.append((i, tensor, shown))
            except ImageProblem as exc:
                out[i] = Explained(Prediction(names[i], None, None, None, exc.reason))
            if len(pending) >= batch_size:
                flush()
        flush()
        return out  # type: ignore[return-value]


def thumbnail_data_uri(image: Image.Image, side: int = 96, quality: int = 80) -> str:
    """A small JPEG of the image as a data: URI, for table cells (st.column_config.ImageColumn)."""
    im = image.convert("RGB").copy()
    im.thumbnail((side, side))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def expand_inputs(paths: list[str | os.PathLike]) -> list[str]:
    """Files as given, folders walked recursively (hidden and system files left out), in order.

    Nothing else is left out silently: a folder that cannot be read, a link to a folder, a FIFO or device,
    a link leading outside the data root is kept as an entry, so that it gets its reason like a bad file.
    """
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            walk = walk_files(p, utf8_names=False)
            out.extend(walk.files)
            out.extend(path for path, reason in walk.skipped if not reason.startswith("hidden or system"))
        elif os.path.lexists(p):
            out.append(p)
        else:
            raise BinclsError(f"{p} does not exist.")
    return out
