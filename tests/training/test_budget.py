"""The time budget covers the whole run: what follows the last epoch is kept back, epochs are planned at
the measured pace, and an epoch that would overrun is cut at the last step that fits (issue 23, item 3)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from bincls.training import budget


def _state(budget_s, elapsed, n_val=400, n_train=1400, val_s=None, step_s=None, cached_views=False,
           bf16=False, pooled=True, fp32_s=None, fine_tuned_after=None):  # fmt: skip
    feed = SimpleNamespace(val=SimpleNamespace(n_items=n_val), train=SimpleNamespace(n_items=n_train),
                           val_views=("plain", "mirrored") if cached_views else None,
                           train_features=None)  # fmt: skip
    model = SimpleNamespace(forward_features=lambda x: x) if pooled else SimpleNamespace()
    return SimpleNamespace(budget=budget_s, started=time.time() - elapsed, feed=feed, model=model,
                           plan=SimpleNamespace(dtype="bf16" if bf16 else None), last_val_s=val_s,
                           step_s=step_s, cfg=SimpleNamespace(batch_size=32, epochs=20),
                           world=SimpleNamespace(size=1), fp32_image_s=fp32_s, calibration_feed=feed, epoch=1,
                           fine_tuned_after=fine_tuned_after)  # fmt: skip


def test_calibration_is_kept_back_at_the_pace_validation_measured():
    state = _state(120, 10, val_s=4.0)  # 10 ms an image
    # The image and its mirror for 400 validation images, then 1,400 training images for the detector.
    assert budget.finish_estimate(state) == pytest.approx(2 * 400 * 0.01 + 1400 * 0.01)
    assert budget.finish_estimate(_state(120, 10, val_s=4.0, bf16=True)) > budget.finish_estimate(state)
    # With a frozen backbone the features phase computed both views already: only the head runs...
    assert budget.finish_estimate(_state(120, 10, val_s=4.0, cached_views=True)) < 1
    # ...until the backbone trains: then its best epoch may need the full passes.
    tuned = _state(120, 10, cached_views=True, fp32_s=0.01, fine_tuned_after=5)
    assert budget.finish_estimate(tuned) == pytest.approx(2 * 400 * 0.01 + 1400 * 0.01)


def test_fine_tuning_starts_only_when_an_epoch_and_its_calibration_fit():
    # 10 ms an image in fp32 (measured in the features phase): an epoch of 1,400 images costs about
    # 3 x 14 s + 4 s of validation, then 22 s of calibration.
    assert budget.main_phase_fits(_state(120, 30, cached_views=True, fp32_s=0.01))
    assert not budget.main_phase_fits(_state(120, 60, cached_views=True, fp32_s=0.01))
    assert budget.main_phase_fits(_state(None, 1000, cached_views=True, fp32_s=0.01))


def test_epochs_are_planned_to_end_before_what_follows_them():
    state = _state(120, 30, val_s=4.0)  # 90 s left, 22 s kept back (+2 s safety)
    assert budget.epochs_that_fit(state, 10.0) == 6
    assert budget.epochs_that_fit(_state(None, 30), 10.0) == 20  # no budget: the epochs asked for


def test_an_epoch_is_cut_when_one_more_step_would_not_leave_time_to_finish():
    fits = _state(120, 60, val_s=4.0)  # 60 s left; validation 4 + calibration 22 + safety 2
    assert not budget.must_cut(fits, step_s=1.0)
    late = _state(120, 95, val_s=4.0)  # 25 s left: one more step, then 28 s of work after it
    late.epoch = 3
    assert budget.must_cut(late, step_s=1.0, steps_left=20)
    # The rest of the epoch costs next to nothing (a head on cached features): it finishes.
    cheap = _state(120, 130, val_s=0.01, cached_views=True)
    cheap.epoch = 3
    assert not budget.must_cut(cheap, step_s=0.001, steps_left=40)
    # The first epoch ends a little late rather than leave a model that saw a third of the images.
    first = _state(120, 95, val_s=4.0)
    first.epoch = 0
    assert not budget.must_cut(first, step_s=0.2, steps_left=10)
    assert budget.must_cut(first, step_s=1.0, steps_left=40)
    assert not budget.must_cut(_state(None, 10_000), step_s=1.0)
