"""The engine end to end on the shipped sample: run folders, reproducibility, stop, NaN, checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bincls import BinclsError
from bincls.models.checkpoint import load_model, read_checkpoint
from bincls.runs.folder import RunFolder
from bincls.training.config import TrainConfig
from bincls.training.events import Listener
from bincls.training.loop import train

FAST = {"epochs": 2, "img_size": 48, "batch_size": 16, "workers": 0}


def _cfg(sample_dir, **kw) -> TrainConfig:
    return TrainConfig(data=[str(sample_dir)], **{**FAST, **kw})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One short real run shared by the read-only tests below."""
    from bincls.paths import SAMPLE_DATA as SAMPLE

    runs = tmp_path_factory.mktemp("runs")
    result = train(_cfg(SAMPLE, epochs=2), runs_dir=runs)
    return result


def test_run_folder_is_complete(finished_run):
    run = finished_run.run
    for name in ("config.json", "split.csv", "metrics.jsonl", "status.json", "best.pt", "last.pt", "log.txt"):
        assert (run.path / name).is_file(), name
    status = json.loads((run.path / "status.json").read_text())
    assert status["state"] == "finished"
    assert status["best_epoch"] in (1, 2)
    assert status["device"] == "cpu"
    records = run.read_metrics()
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert len(steps) == 2 * steps[0]["steps_per_epoch"]
    for key in ("loss", "lr", "images_per_s"):
        assert all(math.isfinite(s[key]) for s in steps)
    for key in (
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "val_precision",
        "val_recall",
        "val_f1",
        "val_auroc",
        "epoch_time",
        "eta_s",
    ):
        assert key in epochs[0], key
    # config.json repeats the run
    cfg = TrainConfig.from_dict(run.config())
    assert cfg.epochs == 2 and cfg.img_size == 48


def test_checkpoint_round_trip(finished_run):
    ckpt = read_checkpoint(finished_run.run.best_checkpoint)
    assert ckpt["class_names"] == ["ants", "bees"]
    assert ckpt["model_config"]["name"] == "small-cnn"
    assert ckpt["model_config"]["img_size"] == 48
    assert set(ckpt["versions"]) >= {"bincls", "torch", "torchvision"}
    model, _ = load_model(finished_run.run.best_checkpoint)
    x = torch.randn(3, 3, 48, 48)
    finished_run.model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), finished_run.model(x), atol=1e-6)
    last = read_checkpoint(finished_run.run.last_checkpoint)
    assert "optimizer" in last and last["epoch"] == 2


def test_same_seed_same_metrics(sample_dir, tmp_path):
    a = train(_cfg(sample_dir, seed=3, epochs=1), runs_dir=tmp_path)
    b = train(_cfg(sample_dir, seed=3, epochs=1), runs_dir=tmp_path)
    ea = [r for r in a.run.read_metrics() if r["kind"] == "epoch"][0]
    eb = [r for r in b.run.read_metrics() if r["kind"] == "epoch"][0]
    for key in ("train_loss", "val_loss", "val_accuracy"):
        assert ea[key] == eb[key], key
    assert a.run.split_path.read_text() == b.run.split_path.read_text()


class _StopAfterSteps(Listener):
    def __init__(self, run: RunFolder, n: int):
        self.run, self.n = run, n

    def step(self, record: dict) -> None:
        if record["global_step"] >= self.n:
            self.run.request_stop()


def test_stop_request_is_honoured(sample_dir, tmp_path):
    run = RunFolder.create(tmp_path, "stopme")
    result = train(_cfg(sample_dir, epochs=20), run=run, listeners=[_StopAfterSteps(run, 4)])
    assert result.state == "stopped"
    assert run.status()["state"] == "stopped"
    steps = [r for r in run.read_metrics() if r["kind"] == "step"]
    assert len(steps) == 4  # stopped after the current batch, not later
    read_checkpoint(run.last_checkpoint)  # a loadable checkpoint was saved on the way out


def test_nan_loss_stops_with_a_message(sample_dir, tmp_path, monkeypatch):
    import bincls.training.setup as tr

    real_build = tr.build_model

    def poisoned(cfg, load_weights=True):
        model = real_build(cfg, load_weights)
        model.register_forward_hook(lambda m, i, out: out * float("nan"))
        return model

    monkeypatch.setattr(tr, "build_model", poisoned)
    with pytest.raises(BinclsError, match="learning rate"):
        train(_cfg(sample_dir), runs_dir=tmp_path)
    run = RunFolder(next(p for p in tmp_path.iterdir() if p.is_dir()))
    st = run.status()
    assert st["state"] == "failed" and "learning rate" in st["error"]


@pytest.mark.parametrize(
    "raw, word",
    [
        ({"data": ["x"], "epochs": "ten"}, "epochs"),
        ({"data": ["x"], "lr": -1}, "lr"),
        ({"data": ["x"], "optimizer": "rmsprop"}, "optimizer"),
        ({"data": "x"}, "data"),
        ({"data": ["x"], "split": [0.5]}, "split"),
        ({"data": ["x"], "bogus": 1}, "bogus"),
        ({"epochs": 3}, "incomplete"),
        ([1, 2], "JSON object"),
    ],
)
def test_hand_edited_config_gets_clear_errors(raw, word):
    with pytest.raises(BinclsError, match=word):
        TrainConfig.from_dict(raw)


def test_cuda_asked_without_gpu_is_a_clear_error(sample_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BinclsError, match="no CUDA GPU"):
        train(_cfg(sample_dir, device="cuda"), runs_dir=tmp_path)


def test_pos_weight_follows_class_balance(tmp_path):
    import shutil

    from bincls.paths import SAMPLE_DATA as SAMPLE

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(SAMPLE / "ants", a)
    b.mkdir()
    for f in sorted((SAMPLE / "bees").iterdir())[:10]:
        shutil.copy(f, b / f.name)
    result = train(
        TrainConfig(data=[str(a), str(b)], epochs=1, img_size=32, workers=0), runs_dir=tmp_path / "runs"
    )
    st = result.run.status()
    counts = (
        __import__("pandas").read_csv(result.run.split_path).query("split == 'train'")["label"].value_counts()
    )
    assert st["pos_weight"] == pytest.approx(counts[0] / counts[1])


@pytest.mark.slow
def test_pretrained_mobilenet_with_local_weights_trains_frozen(sample_dir, tmp_path, mobilenet_weights):
    result = train(
        TrainConfig(
            data=[str(sample_dir)],
            model="mobilenet_v2",
            weights=str(mobilenet_weights),
            freeze_backbone=True,
            epochs=3,
            img_size=160,
            workers=0,
            lr=3e-3,
        ),
        runs_dir=tmp_path,
    )
    assert result.state == "finished"
    # Real ImageNet features separate ants from bees well even from 42 images.
    assert result.best_metrics["accuracy"] >= 0.75


def test_config_with_a_saved_threshold_still_loads():
    cfg = TrainConfig.from_dict({"data": ["x"], "epochs": 2, "threshold": 0.7})
    assert cfg.epochs == 2
