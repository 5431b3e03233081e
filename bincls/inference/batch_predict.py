"""Predict many images for a person to look at: in chunks (progress between them), the first few in
full with heat maps, the rest small, and on one CPU thread while a training run shares the CPU."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from bincls.compute import cpu_threads
from bincls.inference.predict import Explained, ImageSource, Predictor

FULL_VIEWS = 12  # images shown in full (display size and heat map); the rest get a small image only
CHUNK = 32  # images per chunk: progress is reported after each
FULL_CHUNK = 4  # full views (with heat maps) are slower: progress after every few
SMALL_SIDE = 96  # display side of the images not shown in full


def prediction_threads(device: torch.device, runs_dir: str | os.PathLike | None = None) -> int | None:
    """Torch threads to predict with: 1 on the CPU while a run trains in `runs_dir` (both processes'
    thread pools would fight over the cores; see `bincls.compute.cpu_threads`), else None (as they are)."""
    from bincls.runs.active import active_run  # reads run folders only; no training loop

    return 1 if device.type == "cpu" and active_run(runs_dir) is not None else None


def explain_many(
    predictor: Predictor,
    items: list[tuple[str, ImageSource]],
    heatmaps: bool,
    *,
    full_views: int = FULL_VIEWS,
    progress: Callable[[int, int], None] | None = None,
    runs_dir: str | os.PathLike | None = None,
) -> list[Explained]:
    """`Explained` predictions of (name, source) items, in order; a bad file gets its message and the
    others go on. The first `full_views` get a display-size image and (when `heatmaps`) a heat map;
    `progress(done, total)` is called after each chunk."""
    out: list[Explained] = []
    total = len(items)
    if progress:
        progress(0, total)  # the count is shown before the first (slowest) images
    with cpu_threads(prediction_threads(predictor.device, runs_dir)):
        # The full views (heat maps) a few at a time, so the count moves from the start; then chunks.
        for start in range(0, min(full_views, total), FULL_CHUNK):
            part = items[start : min(start + FULL_CHUNK, full_views, total)]
            out += predictor.predict_explained([s for _, s in part], [n for n, _ in part], heatmaps=heatmaps)
            if progress:
                progress(len(out), total)
        for start in range(len(out), total, CHUNK):
            chunk = items[start : start + CHUNK]
            out += predictor.predict_explained([s for _, s in chunk], [n for n, _ in chunk], heatmaps=False,
                                               display_side=SMALL_SIDE)  # fmt: skip
            if progress:
                progress(len(out), total)
    return out


def class_counts(predictions: list, class_names: list[str]) -> dict[str, int]:
    """How many images each class got, and how many files could not be read ("unreadable")."""
    counts = dict.fromkeys(class_names, 0) | {"unreadable": 0}
    for p in predictions:
        counts[p.class_name if not p.error and p.class_name in counts else "unreadable"] += 1
    return counts
