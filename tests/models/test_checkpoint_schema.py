"""Checkpoints are checked against one schema before anything is built from them (issue 16 class 9): real
checkpoint files, made from a real run's best.pt and damaged one field at a time."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time

import pytest
import torch

from bincls import BinclsError
from bincls.inference.predict import Predictor
from bincls.models.checkpoint import load_model, read_checkpoint
from bincls.paths import PROJECT_ROOT, SAMPLE_DATA


def _without(key):
    return lambda c: c.pop(key)


def _set(key, value):
    return lambda c: c.__setitem__(key, value)


def _model(key, value):
    return lambda c: c["model_config"].__setitem__(key, value)


# What is damaged -> the words the message must have.
DAMAGE = {
    "img_size 40000": (_model("img_size", 40_000), "img_size must be a whole number from 32 to 1024"),
    "img_size text": (_model("img_size", "224"), "model_config.img_size"),
    "no state_dict": (_without("state_dict"), "it has no state_dict"),
    "no model_config": (_without("model_config"), "it has no model_config"),
    "state_dict of text": (_set("state_dict", {"w": "weights"}), "state_dict must be a table of named"),
    "no class_names": (_without("class_names"), "it has no class_names"),
    "empty class_names": (_set("class_names", []), "class_names must be exactly two non-empty class names"),
    "one class name": (_set("class_names", ["ants"]), "class_names must be exactly two"),
    "blank class name": (_set("class_names", ["ants", " "]), "class_names must be exactly two"),
    "numbers as names": (_set("class_names", [0, 1]), "class_names must be exactly two"),
    "NaN threshold": (_set("threshold", math.nan), "threshold must be a number from 0 to 1"),
    "threshold 1.5": (_set("threshold", 1.5), "threshold must be a number from 0 to 1"),
    "threshold text": (_set("threshold", "0.5"), "threshold must be a number from 0 to 1"),
    "zero temperature": (_set("temperature", 0.0), "temperature must be a number above 0"),
    "NaN temperature": (_set("temperature", math.nan), "temperature must be a number above 0"),
    "std of zeros": (_model("std", [0.0, 0.0, 0.0]), "model_config.std must be three numbers above 0"),
    "mean of two": (_model("mean", [0.5, 0.5]), "model_config.mean must be three numbers"),
    "dropout 1": (_model("dropout", 1.0), "model_config.dropout"),
    "no model name": (_model("name", ""), "model_config.name must be a model name"),
    "ood of text": (_set("ood", "on"), "ood must be a table"),
    "epoch -1": (_set("epoch", -1), "epoch must be a whole number >= 0"),
}


@pytest.fixture
def damaged(tmp_path, trained_sample_run):
    """`damaged(change)`: a copy of a real best.pt with `change` applied to its dict."""

    def make(change) -> str:
        ckpt = torch.load(trained_sample_run / "best.pt", weights_only=True)
        change(ckpt)
        path = tmp_path / "damaged.pt"
        torch.save(ckpt, path)
        return str(path)

    return make


@pytest.mark.parametrize("what", sorted(DAMAGE))
def test_each_damaged_field_is_named_before_anything_is_built(damaged, what):
    change, words = DAMAGE[what]
    path = damaged(change)
    started = time.monotonic()
    for load in (read_checkpoint, load_model, Predictor):
        with pytest.raises(BinclsError, match=re.escape(words)):
            load(path)
    assert time.monotonic() - started < 5  # img_size 40000 used to allocate 19 GB


def test_the_cli_says_so_without_a_traceback(damaged):
    path = damaged(DAMAGE["img_size 40000"][0])
    image = str(next((SAMPLE_DATA / "ants").iterdir()))
    out = subprocess.run([sys.executable, "-m", "bincls", "predict", path, image], capture_output=True,
                         text=True, cwd=PROJECT_ROOT, timeout=120)  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: Checkpoint") and "img_size" in out.stderr


def test_fields_of_newer_releases_are_allowed(damaged):
    path = damaged(lambda c: c.update(calibration={"method": "isotonic"}, temperature=1.5, threshold=0.3))
    clf = Predictor(path)
    assert clf.threshold == pytest.approx(0.3)
    assert clf.predict(next((SAMPLE_DATA / "bees").iterdir())).class_name in ("ants", "bees")


@pytest.mark.parametrize("given", ["nan", "1.5", "-0.1", "inf", "half"])
def test_a_threshold_that_is_not_a_probability_is_refused(trained_sample_run, given):
    with pytest.raises(BinclsError, match="probability from 0 to 1"):
        Predictor(trained_sample_run / "best.pt", threshold=float(given) if given != "half" else given)
    image = str(next((SAMPLE_DATA / "ants").iterdir()))
    model = str(trained_sample_run / "best.pt")
    cmd = [sys.executable, "-m", "bincls", "predict", model, image, "--threshold", given]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert out.returncode == 2 and "--threshold" in out.stderr and "Traceback" not in out.stderr
