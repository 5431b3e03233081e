"""A time budget that covers the whole run: the files checked and decoded, the backbone's features, the
epochs with their validation, and the calibration after them.

The clock starts when the run's process starts. Epochs are planned from the measured pace of this phase,
and what follows the last epoch (validation, calibration, the detector) is kept back from the start,
estimated from the measured time of a validation pass. An epoch that would not end in time is cut short
at the last step that fits, then validated, rather than run on and thrown away.
"""

from __future__ import annotations

import time

from bincls.training.state import TrainingState

# Seconds kept back for the last checkpoint writes and the status.
SAFETY_S = 2.0
# The out-of-distribution detector is fitted on the features of at most this many training images.
OOD_TRAIN_IMAGES = 2000
# A forward pass in fp32 against the training plan's reduced precision (bf16 on this CPU: 0.49 s against
# 0.16 s for 64 images of mobilenet_v2, bincls/compute.py): calibration runs in fp32, as prediction does.
FP32_SLOWDOWN = 3.0


def end(state: TrainingState) -> float | None:
    """When the whole run must be over (time.time()), or None without a budget."""
    return None if state.budget is None else state.started + state.budget


def finish_estimate(state: TrainingState) -> float:
    """Seconds that calibrating the finished model will take (validation images as image and mirror in
    fp32, and the training images' features for the detector), from the measured pace of validation."""
    feed = state.feed
    if feed is None:
        return 0.0
    n_val = feed.val.n_items
    if feed.val_views is not None:  # cached fp32 features of both views: only the head runs
        return 0.5
    per_image = _per_image_forward(state)
    fp32 = FP32_SLOWDOWN if state.plan.dtype is not None else 1.0
    passes = 2 * n_val * per_image * fp32
    if hasattr(state.model, "forward_features") and feed.train_features is None:
        passes += min(feed.train.n_items, OOD_TRAIN_IMAGES) * per_image
    return passes


def _per_image_forward(state: TrainingState) -> float:
    """Seconds of one image's forward pass in the training plan: from the last validation, else a third of
    a training step's time per image (forward and backward)."""
    n_val = max(state.feed.val.n_items, 1)
    if state.last_val_s is not None:
        return state.last_val_s / n_val
    if state.step_s is not None:
        return state.step_s / max(state.cfg.batch_size // state.world.size, 1) / 3
    return 0.0


def validation_estimate(state: TrainingState) -> float:
    """Seconds of the next validation pass."""
    if state.last_val_s is not None:
        return state.last_val_s
    return _per_image_forward(state) * state.feed.val.n_items


def reserve(state: TrainingState) -> float:
    """Seconds kept back at the end of an epoch: what follows the last epoch."""
    return finish_estimate(state) + SAFETY_S


def must_cut(state: TrainingState, step_s: float) -> bool:
    """True when one more step of `step_s` seconds, then validation and calibration, would not end within
    the budget."""
    deadline = end(state)
    if deadline is None:
        return False
    return time.time() + step_s + validation_estimate(state) + reserve(state) > deadline


def epochs_that_fit(state: TrainingState, epoch_s: float) -> int:
    """Whole epochs of `epoch_s` seconds (validation included) that still end within the budget."""
    deadline = end(state)
    if deadline is None:
        return state.cfg.epochs
    return max(int((deadline - time.time() - reserve(state)) / max(epoch_s, 1e-9)), 0)
