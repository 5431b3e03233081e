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
# The run's first epoch may end this share of the budget late rather than be cut short.
FIRST_EPOCH_SLACK = 0.05
# The out-of-distribution detector is fitted on the features of at most this many training images.
OOD_TRAIN_IMAGES = 2000
# A forward pass in fp32 against the training plan's reduced precision (bf16 on this CPU: 0.49 s against
# 0.16 s for 64 images of mobilenet_v2, bincls/compute.py): calibration runs in fp32, as prediction does.
FP32_SLOWDOWN = 3.0
# A training step costs about this many forward passes (the forward, and a backward of about twice it).
TRAIN_STEP_PASSES = 3.0


def end(state: TrainingState) -> float | None:
    """When the whole run must be over (time.time()), or None without a budget."""
    return None if state.budget is None else state.started + state.budget


def finish_estimate(state: TrainingState, fine_tuned: bool = False) -> float:
    """Seconds that calibrating the finished model will take: only the head runs while the cached views
    of the frozen backbone describe the model; else the validation images as image and mirror in fp32,
    and the training images' features for the detector. `fine_tuned`: as if the backbone had changed."""
    feed = state.feed
    if feed is None:
        return 0.0
    # Once the backbone trains, its best epoch may be a fine-tuned one: plan for the full calibration.
    fine_tuned = fine_tuned or state.fine_tuned_after is not None
    if not fine_tuned and state.calibration_feed.val_views is not None:
        return 0.5
    per = fp32_image_s(state)
    passes = 2 * feed.val.n_items * per
    if hasattr(state.model, "forward_features"):
        passes += min(feed.train.n_items, OOD_TRAIN_IMAGES) * per
    return passes


def fp32_image_s(state: TrainingState) -> float:
    """Seconds of one image's fp32 forward pass: measured (the features phase's fp32 views, or a
    validation in fp32), else from the last validation or a third of a training step per image."""
    if state.fp32_image_s is not None:
        return state.fp32_image_s
    fp32 = FP32_SLOWDOWN if state.plan.dtype is not None else 1.0
    if state.last_val_s is not None:
        return state.last_val_s / max(state.feed.val.n_items, 1) * fp32
    if state.step_s is not None:
        return state.step_s / max(state.cfg.batch_size // state.world.size, 1) / 3 * fp32
    return 0.0


def main_phase_fits(state: TrainingState) -> bool:
    """Before fine-tuning the whole network (after the head epochs): True when one fine-tuning epoch
    (a step costs about three forward passes), its validation and the calibration it then needs (the
    cached features no longer describe the model) end within the budget."""
    deadline = end(state)
    if deadline is None:
        return True
    per = fp32_image_s(state)
    epoch = (TRAIN_STEP_PASSES * state.feed.train.n_items + state.feed.val.n_items) * per
    return time.time() + epoch + finish_estimate(state, fine_tuned=True) + SAFETY_S <= deadline


def validation_estimate(state: TrainingState) -> float:
    """Seconds of the next validation pass."""
    if state.last_val_s is not None:
        return state.last_val_s
    fp32 = FP32_SLOWDOWN if state.plan.dtype is not None else 1.0
    return fp32_image_s(state) / fp32 * state.feed.val.n_items


def reserve(state: TrainingState) -> float:
    """Seconds kept back at the end of an epoch: what follows the last epoch."""
    return finish_estimate(state) + SAFETY_S


def must_cut(state: TrainingState, step_s: float, steps_left: int = 0) -> bool:
    """True when one more step of `step_s` seconds, then validation and calibration, would not end within
    the budget, unless the rest of the epoch (`steps_left` steps) costs next to nothing (head epochs on
    cached features: cutting them saves nothing and leaves no model), or the run's first epoch can still
    end within FIRST_EPOCH_SLACK of the budget (an epoch cut short of a model that never saw all the
    images is rarely worth keeping)."""
    deadline = end(state)
    if deadline is None:
        return False
    now, after = time.time(), validation_estimate(state) + reserve(state)
    if now + step_s + after <= deadline:
        return False
    rest = steps_left * step_s + validation_estimate(state)
    if rest < max(1.0, 0.01 * state.budget):
        return False
    first = state.epoch == 0 and now + rest + reserve(state) <= deadline + FIRST_EPOCH_SLACK * state.budget
    return not first


def epochs_that_fit(state: TrainingState, epoch_s: float) -> int:
    """Whole epochs of `epoch_s` seconds (validation included) that still end within the budget."""
    deadline = end(state)
    if deadline is None:
        return state.cfg.epochs
    return max(int((deadline - time.time() - reserve(state)) / max(epoch_s, 1e-9)), 0)
