"""Tests for bincls.models: the registry, weights loading (offline) and the summary."""

from __future__ import annotations

import os
import random
from dataclasses import asdict
from urllib.error import URLError

import pytest
import torch
import torchvision
from torch import nn

from bincls.errors import BinclsError
from bincls.models import (
    MODELS,
    ModelConfig,
    build_model,
    format_summary,
    list_models,
    model_config,
    model_summary,
    trainable_parameters,
)
from bincls.models.weights import load_backbone_weights

SCRATCH = [e.name for e in list_models() if not e.pretrainable]
BACKBONES = [e.name for e in list_models() if e.pretrainable]


def _forward_backward(model: nn.Module, img_size: int) -> None:
    model.train()
    out = model(torch.randn(2, 3, img_size, img_size))
    assert out.shape == (2, 1)
    out.sum().backward()
    params = trainable_parameters(model)
    assert params
    assert all(p.grad is not None for p in params)
    assert any(p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize("name", SCRATCH + BACKBONES)
def test_every_model_builds_and_trains_at_default_size(name):
    torch.manual_seed(0)
    cfg = model_config(name)
    assert cfg.img_size == MODELS[name].default_img_size
    _forward_backward(build_model(cfg), cfg.img_size)


@pytest.mark.parametrize("size", [64, 160])
def test_small_cnn_takes_any_input_size(size):
    model = build_model(model_config("small-cnn", img_size=size))
    _forward_backward(model, size)
    assert not MODELS["small-cnn"].fixed_input


def test_small_cnn_stays_small():
    model = build_model(model_config("small-cnn"))
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_seed_cnn_has_keras_tutorial_parameter_count():
    model = build_model(model_config("seed-cnn"))
    n = sum(p.numel() for p in model.parameters())
    assert 3_600_000 < n < 3_800_000
    assert MODELS["seed-cnn"].fixed_input


def test_fixed_input_models_follow_img_size():
    model = build_model(model_config("seed-cnn", img_size=128))
    assert model(torch.zeros(1, 3, 128, 128)).shape == (1, 1)
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 3, 256, 256))


def test_registry_defaults():
    assert model_config("seed-cnn").mean == (0.5, 0.5, 0.5)
    cfg = model_config("resnet18")
    assert (cfg.img_size, cfg.mean, cfg.std) == (224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert model_config("small-cnn", mean=(0.1, 0.2, 0.3)).mean == (0.1, 0.2, 0.3)
    assert model_config("seed-cnn-dropout").dropout == 0.5
    for entry in list_models():
        assert entry.description and "\n" not in entry.description
        assert ("ImageNet" in entry.description) == entry.pretrainable


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0"])
def test_backbone_default_dropout_matches_torchvision(name):
    tv = torchvision.models.get_model(name, weights=None)
    (p,) = {m.p for m in tv.classifier.modules() if isinstance(m, nn.Dropout)}
    assert model_config(name).dropout == p


def test_config_roundtrips_through_a_plain_dict():
    cfg = model_config("mobilenet_v2", img_size=160)
    d = asdict(cfg)
    d["mean"], d["std"] = list(d["mean"]), list(d["std"])  # as after a JSON round trip
    assert ModelConfig.from_dict(d) == cfg
    with pytest.raises(BinclsError, match="unknown settings"):
        ModelConfig.from_dict({**d, "colour": "red"})


def test_unknown_model_lists_valid_names():
    with pytest.raises(BinclsError) as e:
        model_config("resnet1000")
    assert "resnet1000" in str(e.value)
    for name in MODELS:
        assert name in str(e.value)


def test_weights_on_scratch_model_is_refused():
    with pytest.raises(BinclsError, match="from scratch"):
        model_config("seed-cnn", weights="imagenet")


def test_freeze_without_pretrained_weights_is_refused():
    with pytest.raises(BinclsError, match="freeze_backbone"):
        model_config("resnet18", freeze_backbone=True)


@pytest.mark.parametrize("kw", [{"img_size": 8}, {"dropout": 1.0}, {"std": (0.5, 0.0, 0.5)}])
def test_bad_settings_are_refused(kw):
    with pytest.raises(BinclsError):
        model_config("small-cnn", **kw)


def test_freeze_backbone_leaves_only_the_head_trainable():
    cfg = model_config("mobilenet_v3_small", weights="imagenet", freeze_backbone=True)
    model = build_model(cfg, load_weights=False)  # architecture only: no download
    head = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in trainable_parameters(model)} == head
    model.train()
    # A frozen backbone is a fixed feature extractor; the dropout before the head still trains.
    assert not any(m.training for m in model.backbone.modules())
    assert model.dropout.training
    _forward_backward(model, 96)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache whose downloads fail as they do without internet."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def no_network(url, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch" / "hub"


def test_imagenet_weights_offline_says_where_to_put_the_file(offline_hub):
    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    with pytest.raises(BinclsError) as e:
        build_model(model_config("resnet18", weights="imagenet"))
    msg = str(e.value)
    assert "resnet18" in msg
    assert url in msg
    assert os.path.join(str(offline_hub), "checkpoints", os.path.basename(url)) in msg
    assert "--weights" in msg


def test_local_mobilenet_weights_load_into_the_backbone(mobilenet_weights):
    state = torch.load(mobilenet_weights, map_location="cpu", weights_only=True)
    model = build_model(model_config("mobilenet_v2", weights=str(mobilenet_weights)))
    backbone = model.backbone.state_dict()
    loaded = [k for k in state if not k.startswith("classifier.")]
    assert loaded and set(loaded) == set(backbone)
    assert all(torch.equal(backbone[k], state[k]) for k in loaded)
    model.train()
    bns = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert model.training and model.head.training
    # Unfrozen: everything trains, and the batch statistics do not drift.
    assert len(trainable_parameters(model)) == len(list(model.parameters()))
    before = bns[0].running_mean.clone()
    _forward_backward(model, 96)
    assert torch.equal(bns[0].running_mean, before)


def test_local_weights_wrapped_in_a_checkpoint_dict(mobilenet_weights, tmp_path):
    state = torch.load(mobilenet_weights, map_location="cpu", weights_only=True)
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)
    model = build_model(model_config("mobilenet_v2", weights=path))
    assert torch.equal(model.backbone.features[0][0].weight, state["features.0.0.weight"])


def test_missing_weights_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(BinclsError, match="does not exist") as e:
        build_model(model_config("resnet18", weights=path))
    assert str(path) in str(e.value)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupt_weights_file(tmp_path):
    path = tmp_path / "garbage.pth"
    torch.save({"w": torch.zeros(1000)}, path)
    truncated = path.read_bytes()[:700]
    # Garbage makes torch's unpickler raise many exception types (IndexError, KeyError, ...): try a spread.
    garbage = [random.Random(i).randbytes(n) for i in range(60) for n in (50, 4096)]
    cfg = model_config("mobilenet_v3_small", weights=path)
    model = build_model(cfg, load_weights=False)
    for data in [b"", b"not weights", truncated, *garbage, *(b"\x80\x02" + g for g in garbage)]:
        path.write_bytes(data)
        with pytest.raises(BinclsError) as e:
            load_backbone_weights(model, cfg)
        assert str(path) in str(e.value)


def test_weights_file_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(BinclsError, match="not a state_dict"):
        build_model(model_config("resnet18", weights=path))


def test_weights_for_another_architecture(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(BinclsError, match="does not match") as e:
        build_model(model_config("mobilenet_v2", weights=path))
    assert str(path) in str(e.value)


def test_weights_file_from_the_same_architecture_loads(tmp_path):
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = build_model(model_config("resnet18", weights=path, freeze_backbone=True))
    assert torch.equal(model.backbone.conv1.weight, source.conv1.weight)
    assert model.head.out_features == 1


@pytest.mark.parametrize("name", ["seed-cnn", "small-cnn", "mobilenet_v2"])
def test_summary_rows_add_up(name):
    cfg = model_config(name, weights="imagenet" if name == "mobilenet_v2" else "none",
                       freeze_backbone=name == "mobilenet_v2")  # fmt: skip
    model = build_model(cfg, load_weights=False)
    model.train()
    modes = [m.training for m in model.modules()]
    summary = model_summary(model, cfg.img_size)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert summary.total_params == total == sum(r.params for r in summary.rows)
    assert summary.trainable_params == trainable == sum(r.params for r in summary.rows if r.trainable)
    assert summary.size_mb > total * 4 / 2**20 * 0.99
    assert summary.rows[-1].output_shape == (1,)
    assert [m.training for m in model.modules()] == modes  # the summary leaves train/eval modes as they were
    text = format_summary(summary)
    assert f"Total params: {total:,}" in text
    assert summary.rows[0].name in text


def test_seed_cnn_summary_shapes():
    summary = model_summary(build_model(model_config("seed-cnn")), 256)
    shapes = {r.name: r.output_shape for r in summary.rows}
    assert shapes["features.0"] == (16, 254, 254)
    assert shapes["flatten"] == (16 * 30 * 30,)
