"""The fast paths give the same answers as the plain ones: decode cache, batch transforms, feature caching."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from bincls.compute import plan_compute, tune_allocator
from bincls.data.decode_cache import load_or_decode, parse_bytes
from bincls.data.images import load_rgb
from bincls.data.transforms import Augment, BatchTransform, Preprocess, build_eval_transform, train_margin
from bincls.runs.folder import RunFolder
from bincls.training.config import TrainConfig
from bincls.training.loop import train


def _paths(sample_dir, n=6):
    return [str(p) for p in sorted((sample_dir / "ants").iterdir())[:n]]


def test_decode_cache_is_reused_and_invalidated(sample_dir, tmp_path):
    folder = tmp_path / "imgs"
    shutil.copytree(sample_dir / "ants", folder)
    paths = [str(p) for p in sorted(folder.iterdir())[:5]]
    first = load_or_decode(paths, 40)
    assert not first.from_cache and first.images.shape == (5, 3, 40, 40) and first.images.dtype == torch.uint8
    again = load_or_decode(paths, 40)
    assert again.from_cache and torch.equal(again.images, first.images)
    os.utime(paths[0], ns=(0, 10**9))  # the file changed: the cache must not be used
    assert not load_or_decode(paths, 40).from_cache


def test_eval_batch_transform_matches_the_pil_eval_transform(sample_dir):
    pre = Preprocess(64)
    paths = _paths(sample_dir)
    batch = BatchTransform(pre)(load_or_decode(paths, 64).images)
    ref = torch.stack([build_eval_transform(pre)(load_rgb(p, max_side=64)) for p in paths])
    assert torch.allclose(batch, ref, atol=1e-5)


def test_train_batch_transform_is_random_per_image_and_seeded(sample_dir):
    pre, aug = Preprocess(48), Augment()
    imgs = load_or_decode(_paths(sample_dir), train_margin(pre, aug)).images
    a = BatchTransform(pre, aug, torch.Generator().manual_seed(1))(imgs)
    b = BatchTransform(pre, aug, torch.Generator().manual_seed(1))(imgs)
    c = BatchTransform(pre, aug, torch.Generator().manual_seed(2))(imgs)
    assert a.shape == (6, 3, 48, 48) and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    twice = BatchTransform(pre, aug, torch.Generator().manual_seed(1))(imgs[:1].repeat(4, 1, 1, 1))
    assert not torch.equal(twice[0], twice[1])  # each image of a batch gets its own random view


def test_memory_budget_below_the_data_streams(sample_dir, tmp_path):
    cfg = TrainConfig(data=[str(sample_dir)], epochs=1, img_size=32, workers=0, memory_budget="1K")
    result = train(cfg, runs_dir=tmp_path)
    st = result.run.status()
    assert st["state"] == "finished" and st["data_mode"] == "stream"
    assert "memory budget" in st["data_message"]


def test_in_memory_mode_is_the_default(sample_dir, tmp_path):
    result = train(TrainConfig(data=[str(sample_dir)], epochs=1, img_size=32, workers=0), runs_dir=tmp_path)
    assert result.run.status()["data_mode"] == "memory"


@pytest.mark.slow
def test_frozen_backbone_without_augmentation_trains_on_cached_features(
    sample_dir, tmp_path, mobilenet_weights
):
    cfg = TrainConfig(
        data=[str(sample_dir)],
        model="mobilenet_v2",
        weights=str(mobilenet_weights),
        freeze_backbone=True,
        augment=False,
        epochs=4,
        img_size=128,
        lr=3e-3,
        workers=0,
    )
    result = train(cfg, runs_dir=tmp_path)
    st = result.run.status()
    assert st["data_mode"] == "features"
    assert result.best_metrics["accuracy"] >= 0.75
    # The checkpoint is the whole model: evaluating it from files gives the val metrics the loop saw.
    from bincls.inference.evaluate import evaluate

    ev = evaluate(result.run.path, split="val")
    assert ev.metrics["accuracy"] == pytest.approx(result.best_metrics["accuracy"], abs=1e-6)


def test_compute_plan_choices():
    cpu = torch.device("cpu")
    assert plan_compute(cpu, "seed-cnn", "fp32").dtype is None
    assert plan_compute(cpu, "small-cnn", "fp16").dtype is None  # fp16 is for GPUs
    plan = plan_compute(cpu, "small-cnn")
    assert plan.dtype is None and not plan.channels_last  # measured fastest in fp32


def test_allocator_tuning_and_sizes():
    assert tune_allocator() in (True, False)
    assert parse_bytes("4G") == 4 * 2**30 and parse_bytes("512M") == 512 * 2**20 and parse_bytes("100") == 100


def test_stop_file_in_a_memory_run(sample_dir, tmp_path):
    run = RunFolder.create(tmp_path, "x")
    run.request_stop()
    result = train(TrainConfig(data=[str(sample_dir)], epochs=3, img_size=32, workers=0), run=run)
    assert result.state == "stopped"
