"""Pre-flight checks: a wrong combination of settings is a message before any run folder exists."""

from __future__ import annotations

import re

import pytest
import torch

from bincls import BinclsError
from bincls.cli import main
from bincls.training.config import TrainConfig
from bincls.training.preflight import preflight


def _cfg(sample_dir, **settings) -> TrainConfig:
    return TrainConfig(data=[str(sample_dir)], **settings)


def test_good_settings_pass(sample_dir, tmp_path):
    preflight(_cfg(sample_dir))
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"checked for existence only; loading is the model's job")
    preflight(_cfg(sample_dir, model="mobilenet_v2", weights=str(weights), freeze_backbone=True))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"data": ["/no/such/folder"]}, "/no/such/folder"),
        ({"model": "small-cnn", "weights": "imagenet"}, "trained from scratch"),
        ({"model": "resnet18", "weights": "none", "freeze_backbone": True}, "freeze_backbone needs"),
        ({"model": "resnet18", "weights": "/no/such/w.pth"}, "Weights file '/no/such/w.pth' not found"),
        ({"model": "no-such-model"}, "Unknown model 'no-such-model'"),
    ],
)
def test_each_wrong_setting_is_named(sample_dir, settings, message):
    cfg = TrainConfig(**{"data": [str(sample_dir)], **settings})
    with pytest.raises(BinclsError, match=re.escape(message)):
        preflight(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_an_absent_device_is_named(sample_dir):
    with pytest.raises(BinclsError, match="device cuda"):
        preflight(_cfg(sample_dir, device="cuda"))


def test_a_weights_file_outside_the_data_root_is_refused(sample_dir, tmp_path, monkeypatch):
    root, outside = tmp_path / "root", tmp_path / "outside.pth"
    root.mkdir()
    outside.write_bytes(b"x")
    monkeypatch.setenv("BINCLS_DATA_ROOT", str(root))
    with pytest.raises(BinclsError, match="leads outside the folder this app may read"):
        preflight(_cfg(sample_dir, model="resnet18", weights=str(outside)))


def test_the_cli_train_runs_it_before_making_a_run_folder(sample_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["train", str(sample_dir), "--model", "resnet18", "--weights", str(tmp_path / "gone.pth"),
                 "--runs-dir", str(runs)])  # fmt: skip
    assert code == 2
    assert "Weights file" in capsys.readouterr().err
    assert not runs.exists() or not any(runs.iterdir())
