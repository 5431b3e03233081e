"""What a person watching a run is told: a count for the work before the first step, and an ETA that
follows the pace of the phase it is in and never runs past the time budget (issue 17, item 8)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch

from bincls.data.batch_feeds import prepare_training_data
from bincls.data.dataset import load_data
from bincls.data.split import SplitConfig
from bincls.data.transforms import Augment, Preprocess
from bincls.models import build_model, model_config
from bincls.training.config import TrainConfig
from bincls.training.events import Listener
from bincls.training.loop import _eta, _remaining, train


def test_feature_computation_reports_its_own_count(sample_dir):
    data = load_data([sample_dir], split=SplitConfig(0.7, 0.2, 0.1))
    told: list[tuple[str, int, int]] = []
    extractor = build_model(model_config("small-cnn", 32, "none", False), load_weights=False)
    feed = prepare_training_data(data, Preprocess(32), Augment.none(), 8, 0, torch.device("cpu"), workers=0,
                                 frozen_model=extractor, progress=lambda *a: told.append(a))  # fmt: skip
    n_train, n_val = len(data.part("train")), len(data.part("val"))
    features = [(d, t) for w, d, t in told if w == "computing the backbone's features"]
    # The validation images twice: as they are and mirrored, in fp32, for calibration to reuse.
    total = n_train + 2 * n_val
    assert feed.mode == "features" and features[-1] == (total, total)
    assert feed.val_views[0].shape == feed.val_views[1].shape == (n_val, feed.val.x.shape[1])
    assert [d for d, _ in features] == sorted(d for d, _ in features) and len(features) >= 3
    assert ("decoding training images", n_train, n_train) in told  # decoding has its own count first
    assert told.index(("decoding training images", n_train, n_train)) < told.index(
        ("computing the backbone's features", *features[0]))


def test_a_run_tells_its_listeners_how_far_the_preparation_is(sample_dir, tmp_path):
    class Seen(Listener):
        def __init__(self):
            self.seen = []

        def preparing(self, what, done, total):
            self.seen.append((what, done, total))

    seen = Seen()
    run = train(TrainConfig(data=[str(sample_dir)], epochs=1, img_size=32, workers=0), runs_dir=tmp_path,
                listeners=[seen]).run  # fmt: skip
    assert ("decoding training images", 42, 42) in seen.seen
    assert run.status().get("preparing") is None  # cleared once the steps began


def _state(epoch_times, epochs, phase="main", head=0, budget=None):
    model = SimpleNamespace(pretrained=bool(head), backbone=object())
    cfg = SimpleNamespace(freeze_backbone=False, head_epochs=head, epochs=epochs)
    return SimpleNamespace(epoch_times=list(epoch_times), epochs=epochs, phase=phase, model=model, cfg=cfg,
                           budget=budget, started=time.time(), feed=None, steps_per_epoch=10)  # fmt: skip


def test_the_eta_follows_this_phase_and_not_the_fast_head_epochs():
    # Two head epochs of 1 s on cached features, then fine-tune epochs of 20 s; epoch 5 of 10 half done.
    state = _state([1, 1, 20, 20], epochs=10, head=2)
    assert _eta(state, 5, 5, per_step=2.0) == pytest.approx(10 + 20 * 5)
    # The average over all epochs (10.5 s) would have said 10 + 52.5 s: the swing of the issue.
    after = _remaining(state, 4, 4, 0.0, 20.0)  # at the end of epoch 4: six epochs at 20 s
    assert after == pytest.approx(120)


def test_the_eta_never_runs_past_the_time_budget():
    state = _state([30, 30, 30], epochs=300, phase="head", budget=60)
    assert 55 <= _eta(state, 4, 1, per_step=3.0) <= 60
