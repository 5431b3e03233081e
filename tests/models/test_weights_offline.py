"""ImageNet weights without a network (issue 23, item 1): the messages name the folder and torchvision's file
name; a file of the architecture is taken whatever its name (in the hub folder, or given), after a check of
every layer's name and shape; the user's file is only read. The CLI prints the model in one line."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import pytest
import torch
import torchvision

from bincls import BinclsError
from bincls.audit.features import feature_backbone
from bincls.models.weights import (
    cached_imagenet_file,
    guess_architecture,
    hub_checkpoints,
    import_weights,
    own_weights_file,
    weights_at_hand,
)
from bincls.paths import PROJECT_ROOT, SAMPLE_DATA
from bincls.training.config import TrainConfig
from bincls.training.preflight import preflight

FILE = "mobilenet_v2-7ebf99e0.pth"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr("bincls.models.weights.download_reachable", lambda timeout=2.0: False)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _names_folder_and_file(message: str) -> bool:
    return FILE in message and str(hub_checkpoints()) in message


def test_every_offline_message_names_the_folder_and_the_file(offline):
    with pytest.raises(BinclsError) as audit:
        feature_backbone()
    with pytest.raises(BinclsError) as fast:
        preflight(TrainConfig(data=[str(SAMPLE_DATA)], preset="fast"))
    with pytest.raises(BinclsError) as asked:
        preflight(TrainConfig(data=[str(SAMPLE_DATA)], model="mobilenet_v2", weights="imagenet"))
    for e in (audit, fast, asked):
        assert _names_folder_and_file(str(e.value)), str(e.value)
        assert "weights add FILE" in str(e.value)


def test_a_file_in_the_hub_folder_under_another_name_is_found(offline, mobilenet_weights):
    hub_checkpoints().mkdir(parents=True)
    shutil.copy(mobilenet_weights, hub_checkpoints() / "imagenet (1).bin")
    torch.save({"conv.weight": torch.zeros(2, 3, 3, 3)}, hub_checkpoints() / "something-else.pth")
    assert cached_imagenet_file("mobilenet_v2") == hub_checkpoints() / "imagenet (1).bin"
    assert cached_imagenet_file("resnet18") is None, "checked by its layers, not by its name"
    assert "torch hub cache" in weights_at_hand("mobilenet_v2")


def test_import_checks_the_architecture_copies_into_the_cache_and_only_reads_the_file(
    offline, mobilenet_weights, tmp_path
):  # fmt: skip
    mine = tmp_path / "mine" / "weights.whatever"
    mine.parent.mkdir()
    shutil.copy(mobilenet_weights, mine)
    before = (_digest(mine), sorted(mine.parent.iterdir()))
    assert import_weights(mine) == ("mobilenet_v2", own_weights_file("mobilenet_v2"))
    assert (_digest(mine), sorted(mine.parent.iterdir())) == before
    assert _digest(own_weights_file("mobilenet_v2")) == before[0]
    assert cached_imagenet_file("mobilenet_v2") == own_weights_file("mobilenet_v2")
    assert feature_backbone() == ("mobilenet_v2", "imagenet"), "the audit has its network"
    r = preflight(TrainConfig(data=[str(SAMPLE_DATA)]))
    assert (r.config.preset, r.config.model, r.config.weights) == ("fast", "mobilenet_v2", "imagenet")
    with pytest.raises(BinclsError, match="holds mobilenet_v2 weights, not resnet18's"):
        import_weights(mine, "resnet18")


def test_a_file_of_another_architecture_or_of_no_tensors_is_refused(offline, tmp_path):
    small = tmp_path / "v3.pth"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), small)
    assert guess_architecture(small) == "mobilenet_v3_small"
    with pytest.raises(BinclsError, match="not mobilenet_v2's"):
        import_weights(small, "mobilenet_v2")
    odd = tmp_path / "odd.pth"
    torch.save({"features.0.0.weight": torch.zeros(1)}, odd)
    with pytest.raises(BinclsError, match="fit none"):
        import_weights(odd)
    assert not own_weights_file("mobilenet_v2").exists()


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bincls", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip


def test_the_cli_names_the_file_takes_one_and_says_where_it_looks(mobilenet_weights, tmp_path):
    import os

    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}
    # The CLI cannot be monkeypatched: it may reach torchvision's server here; offline it must name the file.
    listing = _cli("weights", env=env)
    assert listing.returncode == 0 and "mobilenet_v2" in listing.stdout
    if "-" == listing.stdout.split()[1]:  # nothing cached: the listing says where to put it
        assert FILE in listing.stdout and str(tmp_path / "torch" / "hub" / "checkpoints") in listing.stdout
    added = _cli("weights", "add", str(mobilenet_weights), env=env)
    assert added.returncode == 0, added.stderr
    assert "holds mobilenet_v2 weights" in added.stdout and "-imagenet.pth" in added.stdout
    photo = SAMPLE_DATA / "ants" / sorted(os.listdir(SAMPLE_DATA / "ants"))[0]  # not weights at all
    refused = _cli("weights", "add", str(photo), env=env)
    assert refused.returncode == 2 and refused.stderr.startswith("error: ")
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
def test_a_cli_run_prints_the_model_in_one_line_and_keeps_the_table_in_the_run_folder(tmp_path):
    import os

    env = {**os.environ, "BINCLS_RUNS_DIR": str(tmp_path / "runs")}
    done = _cli("train", str(SAMPLE_DATA), "--epochs", "1", "--img-size", "32", "--workers", "0", env=env)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / os.path.basename(done.stdout.strip().splitlines()[-1])
    table = (run / "model_summary.txt").read_text()
    assert "Layer (type)" in table and "Total params" in table
    assert "Layer (type)" not in done.stderr and "model_summary.txt" in done.stderr
    assert len(done.stderr.splitlines()) < 40, done.stderr
    args = ("train", str(SAMPLE_DATA), "--epochs", "1", "--img-size", "32", "--workers", "0", "--summary")
    full = _cli(*args, env=env)
    assert "Layer (type)" in full.stderr
