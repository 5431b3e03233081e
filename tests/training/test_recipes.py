"""Presets: what auto picks and why, what each preset fills in, and what a user's own setting keeps."""

from __future__ import annotations

import pytest

from bincls import BinclsError
from bincls.training.config import DEFAULT_LR, TrainConfig, to_command
from bincls.training.recipes import RECIPES, is_resolved, resolve
from bincls.training.schedule import lr_factor


def _resolve(**kw):
    return resolve(TrainConfig(data=["x"], **kw))


def test_auto_without_weights_trains_from_scratch_and_says_so():
    r = _resolve()
    assert r.config.preset == "scratch" and r.config.weights == "none" and r.config.model == "small-cnn"
    assert r.note == "preset scratch: no pretrained weights here: training from scratch"
    assert is_resolved(r.config)
    assert {k: getattr(r.config, k) for k in RECIPES["scratch"]} == RECIPES["scratch"]


def test_a_users_own_setting_beats_the_recipe_and_an_optimizer_brings_its_own_rate():
    c = _resolve(epochs=3, img_size=48, optimizer="sgd").config
    assert (c.epochs, c.img_size, c.optimizer, c.lr) == (3, 48, "sgd", DEFAULT_LR["sgd"])
    assert c.time_budget == 0  # epochs asked for are trained in full, not cut to the recipe's budget
    assert _resolve(epochs=3, time_budget=60.0).config.time_budget == 60
    assert c.patience == RECIPES["scratch"]["patience"]
    assert _resolve(optimizer="sgd", lr=0.05).config.lr == 0.05


def test_a_pretrained_preset_without_weights_is_refused_with_what_to_do():
    for preset in ("fast", "best"):
        with pytest.raises(BinclsError, match="none here.*preset scratch.*--weights FILE"):
            _resolve(preset=preset)


def test_a_scratch_model_or_no_weights_is_scratch_whatever_is_cached(imagenet_hub):
    assert _resolve(model="seed-cnn").config.preset == "scratch"
    assert _resolve(weights="none").config.preset == "scratch"
    c = _resolve(preset="scratch").config
    assert c.weights == "none" and c.model == "small-cnn"


def test_auto_with_weights_in_the_hub_cache_is_fast(imagenet_hub):
    r = _resolve()
    c = r.config
    got = (c.preset, c.model, c.weights, c.freeze_backbone, c.augment)
    assert got == ("fast", "mobilenet_v2", "imagenet", True, False)
    assert "torch hub cache" in r.why and "mobilenet_v2" in r.why
    best = _resolve(preset="best").config
    assert best.freeze_backbone is False and best.head_epochs > 0 and best.layer_decay < 1
    assert best.time_budget > 0
    # Asking to fine-tune under auto takes the staged recipe, not the fixed extractor's settings.
    assert _resolve(freeze_backbone=False).config.preset == "best"


def test_a_local_weights_file_names_its_architecture(mobilenet_weights):
    r = _resolve(weights=str(mobilenet_weights))
    assert r.config.preset == "fast" and r.config.model == "mobilenet_v2"
    assert mobilenet_weights.name in r.why


def test_resolving_is_idempotent_and_the_command_repeats_the_users_choices(imagenet_hub):
    first = _resolve(epochs=12).config
    assert resolve(first).config == first
    cmd = to_command(TrainConfig(data=["x"], epochs=12, preset="best"))
    assert cmd == ["python", "-m", "bincls", "train", "x", "--preset", "best", "--epochs", "12"]


@pytest.mark.parametrize("kind", ["cosine", "onecycle", "none"])
def test_schedules_start_and_end_where_they_should(kind):
    assert lr_factor(kind, 0.0, warmup=0.1) == pytest.approx(0.01)
    assert lr_factor(kind, 0.1, warmup=0.1) == pytest.approx(1.0 if kind != "onecycle" else 1 / 25)
    end = lr_factor(kind, 1.0)
    assert end == pytest.approx({"cosine": 0.0, "onecycle": 1 / 25 / 1e4, "none": 1.0}[kind], abs=1e-9)
    if kind == "onecycle":
        assert lr_factor(kind, 0.3) == pytest.approx(1.0)  # the peak, as torch's OneCycleLR


def test_a_fine_tuned_pretrained_backbone_never_gets_the_heads_rate():
    from bincls.models import build_model, model_config
    from bincls.training.optimization import BACKBONE_LR_CAP, make_optimizer

    model = build_model(model_config("mobilenet_v2", 64, "imagenet"), load_weights=False)
    cfg = TrainConfig(data=["x"], optimizer="adam", lr=1e-2, layer_decay=0.5)
    opt = make_optimizer(cfg, model)
    rates = {id(p): g["lr"] for g in opt.optimizer.param_groups for p in g["params"]}
    backbone = [rates[id(p)] for p in model.backbone.parameters()]
    assert max(backbone) == pytest.approx(BACKBONE_LR_CAP["adam"]) and min(backbone) < max(backbone) / 100
    assert all(rates[id(p)] == 1e-2 for p in model.head.parameters())
    assert "destroy its features" in opt.note
    # Biases and norm scales are not decayed.
    assert all(g["weight_decay"] == 0 for g in opt.optimizer.param_groups if g["params"][0].ndim <= 1)
