"""Recipe behaviour in real runs: the time budget, divergence, calibration into the checkpoint, continuing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from bincls.inference.predict import Predictor
from bincls.models.checkpoint import read_checkpoint
from bincls.runs.folder import RunFolder
from bincls.training.config import TrainConfig
from bincls.training.loop import train


def _two_tone_folder(root, n: int = 80, seed: int = 0):
    """Two learnable classes of small real PNG files: bright-left vs bright-right noisy images."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(("left", "right")):
        (root / name).mkdir(parents=True)
        for i in range(n):
            a = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
            half = slice(0, 16) if label == 0 else slice(16, 32)
            a[:, half] = np.clip(a[:, half].astype(int) + 150, 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root / name / f"{i:03d}.png")
    return root


def _log(run: RunFolder) -> str:
    return run.log_path.read_text()


@pytest.mark.slow
def test_a_time_budget_plans_the_epochs_and_keeps_the_best(sample_dir, tmp_path):
    budget = 12.0
    result = train(TrainConfig(data=[str(sample_dir)], epochs=1000, img_size=48, workers=0,
                               time_budget=budget), runs_dir=tmp_path)  # fmt: skip
    status = result.run.status()
    assert result.state == "finished" and status["state"] == "finished"
    # The whole run, files, epochs and calibration, ends within its budget, and says why it stopped.
    assert status["epochs_done"] < 1000 and status["elapsed_s"] < budget * 1.1
    assert status["ended_by"] == "time_budget" and status["stop_reason"].startswith("time budget")
    assert "time budget:" in _log(result.run) and "epochs planned" in _log(result.run)
    assert read_checkpoint(result.run.best_checkpoint)["epoch"] == result.best_epoch


def test_a_loss_that_diverges_falls_back_to_the_best_checkpoint(sample_dir, tmp_path, monkeypatch):
    import bincls.training.setup as setup

    real_build, calls = setup.build_model, {"n": 0}

    def poisoned_later(cfg, load_weights=True):
        model = real_build(cfg, load_weights)

        def hook(module, inputs, out):
            calls["n"] += module.training  # training steps only: validation stays finite
            return out * float("nan") if calls["n"] > 6 else out

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(setup, "build_model", poisoned_later)
    cfg = TrainConfig(data=[str(sample_dir)], epochs=10, img_size=32, batch_size=16, workers=0, patience=0)
    result = train(cfg, runs_dir=tmp_path)
    assert result.state == "finished" and result.best_epoch is not None
    assert "training diverged, so the run keeps its best checkpoint" in _log(result.run)
    best = read_checkpoint(result.run.best_checkpoint)
    assert all(torch.isfinite(v).all() for v in best["state_dict"].values() if v.is_floating_point())


def test_calibration_travels_in_the_checkpoint_and_prediction_uses_it(tmp_path):
    data = _two_tone_folder(tmp_path / "data")
    cfg = TrainConfig(data=[str(data)], epochs=3, img_size=32, workers=0)
    result = train(cfg, runs_dir=tmp_path / "runs")
    ckpt = read_checkpoint(result.run.best_checkpoint)
    cal = ckpt["calibration"]
    assert cal["val_images"] == 32 and 0 < ckpt["temperature"] and math.isfinite(ckpt["logit_bias"])
    assert 0 < ckpt["threshold"] < 1 and isinstance(ckpt["tta"], bool)
    assert "calibrated on 32 validation images" in _log(result.run)
    pred = Predictor(result.run.best_checkpoint)
    assert pred.threshold == ckpt["threshold"] and pred.scorer.temperature == ckpt["temperature"]
    image = sorted((data / "right").iterdir())[0]
    x = pred.to_tensor(str(image)).unsqueeze(0)
    with torch.no_grad():
        logit = pred.model(x).item()
        if ckpt["tta"]:
            logit = (logit + pred.model(torch.flip(x, dims=[-1])).item()) / 2
    expected = 1 / (1 + math.exp(-(logit / ckpt["temperature"] + ckpt["logit_bias"])))
    assert pred.predict(str(image)).p_class1 == pytest.approx(expected, abs=1e-5)


def test_too_few_validation_images_are_not_calibrated(sample_dir, tmp_path):
    result = train(TrainConfig(data=[str(sample_dir)], epochs=1, img_size=32, workers=0), runs_dir=tmp_path)
    ckpt = read_checkpoint(result.run.best_checkpoint)
    assert ckpt["threshold"] == 0.5 and "temperature" not in ckpt
    assert "not calibrated: 12 validation images" in _log(result.run)


def test_continuing_a_run_keeps_its_split_and_starts_from_its_weights(tmp_path):
    data = _two_tone_folder(tmp_path / "data", n=30)
    first = train(TrainConfig(data=[str(data)], epochs=2, img_size=32, workers=0), runs_dir=tmp_path / "runs")
    _two_tone_folder(tmp_path / "more", n=10, seed=1)
    for name in ("left", "right"):
        for f in (tmp_path / "more" / name).iterdir():
            f.rename(data / name / f"new_{f.name}")
    second = train(TrainConfig(data=[str(data)], epochs=1, img_size=32, workers=0,
                               init_from=str(first.run.path)), runs_dir=tmp_path / "runs")  # fmt: skip
    import pandas as pd

    old = pd.read_csv(first.run.split_path).set_index("path")["split"]
    new = pd.read_csv(second.run.split_path).set_index("path")["split"]
    assert len(new) == len(old) + 20 and (new[old.index] == old).all()
    assert "60 images keep their split, 20 new images are split afresh" in _log(second.run)
    assert second.run.config()["init_from"] == str(first.run.path) and second.run.id != first.run.id


def test_the_divergence_guard_tells_overfitting_from_divergence():
    from types import SimpleNamespace

    from bincls.training.callbacks import BestCheckpoint, DivergenceGuard

    best = BestCheckpoint()
    best.val_loss, best.epoch = 0.4, 2
    guard = DivergenceGuard(best)
    state = SimpleNamespace(epoch=1)
    assert guard.after_epoch(state, {"val_loss": 0.5, "train_loss": 0.6}) is None
    state.epoch = 5  # overfitting: validation loss up, training loss down
    assert guard.after_epoch(state, {"val_loss": 2.5, "train_loss": 0.05}) is None
    state.epoch = 6  # few images: the training loss doubles from batch noise alone while validation overfits
    guard.lowest_train_loss = 0.22
    assert guard.after_epoch(state, {"val_loss": 1.9, "train_loss": 0.48}) is None
    assert "training diverged" in guard.after_epoch(state, {"val_loss": 1.9, "train_loss": 0.69})
    state.epoch = 7  # blown up: both up
    assert "training diverged" in guard.after_epoch(state, {"val_loss": 9.0, "train_loss": 3.0})
    assert "training diverged" in DivergenceGuard(best).after_epoch(state, {"val_loss": float("nan"),
                                                                            "train_loss": 0.1})  # fmt: skip
