"""Phone files: LiteRT checked in its interpreter against `bincls predict`, Core ML as far as Linux allows."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from bincls.errors import BinclsError
from bincls.inference import mobile_export as me

SAMPLE = Path(__file__).resolve().parents[2] / "bincls" / "sample_data"


def test_without_the_converter_the_export_says_how_to_install_it(monkeypatch):
    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(me.importlib.metadata, "version", absent)
    with pytest.raises(
        BinclsError, match=r"--format tflite needs litert-torch.*pip install 'bincls\[mobile\]'"
    ):
        me.require_converter("tflite")
    with pytest.raises(BinclsError, match="--format coreml needs coremltools"):
        me.require_converter("coreml")


def test_a_converter_that_cannot_load_with_this_torch_says_which_torch_it_needs(monkeypatch):
    monkeypatch.setattr(me.importlib.metadata, "version", lambda name: "0.10.0")
    monkeypatch.setattr(me.importlib.metadata, "requires", lambda name: ["torch<2.15.0,>=2.4.0", "numpy"])
    monkeypatch.setitem(sys.modules, "litert_torch", None)  # importing it raises ImportError
    with pytest.raises(BinclsError) as err:
        me.require_converter("tflite")
    assert "torch<2.15.0,>=2.4.0" in str(err.value) and "this environment has torch" in str(err.value)


def test_phone_files_go_where_asked_with_the_right_suffix(tmp_path):
    ckpt = tmp_path / "best.pt"
    assert me._target(None, ckpt, "tflite") == tmp_path / "best.tflite"
    assert me._target(None, ckpt, "coreml") == tmp_path / "best.mlpackage"
    with pytest.raises(BinclsError, match=r"must end in \.tflite"):
        me._target(tmp_path / "model.onnx", ckpt, "tflite")
    with pytest.raises(BinclsError, match="does not exist"):
        me._target(tmp_path / "no" / "m.tflite", ckpt, "tflite")
    (tmp_path / "photos.mlpackage").mkdir()
    with pytest.raises(BinclsError, match="not a Core ML package"):
        me._target(tmp_path / "photos.mlpackage", ckpt, "coreml")


def test_the_phone_input_is_the_resized_image_and_the_json_says_so():
    from bincls.data.transforms import Preprocess

    spec = me.phone_input("tflite", Preprocess(96))
    assert spec["dtype"] == "uint8" and spec["shape"] == [1, 96, 96, 3] and spec["layout"] == "NHWC"
    assert "squashed to 96 x 96" in spec["resize"] and spec["mean"] == [0.485, 0.456, 0.406]
    assert me.phone_input("coreml", Preprocess(96))["shape"] == [1, 3, 96, 96]


def test_the_pixels_the_check_feeds_are_bincls_own_resize():
    """The check gives the phone file what bincls normalizes: the same uint8 torchvision resize."""
    import torch

    from bincls.data.images import load_rgb
    from bincls.data.transforms import Preprocess, build_eval_transform
    from bincls.inference.mobile_check import resized_pixels

    path = next((SAMPLE / "ants").iterdir())
    pre = Preprocess(64)
    small = resized_pixels(np.asarray(load_rgb(path)), 64)
    ours = (
        torch.from_numpy(small).permute(2, 0, 1).float() / 255 - torch.tensor(pre.mean)[:, None, None]
    ) / (torch.tensor(pre.std)[:, None, None])
    assert torch.allclose(ours, build_eval_transform(pre)(load_rgb(path)), atol=1e-6)


@pytest.mark.slow
def test_tflite_in_the_litert_interpreter_gives_bincls_predicts_answers(trained_sample_run, tmp_path):
    pytest.importorskip(
        "litert_torch", reason="LiteRT's converter is an optional extra: pip install 'bincls[mobile]'"
    )
    from ai_edge_litert.interpreter import Interpreter

    from bincls.data.images import load_rgb
    from bincls.inference.mobile_check import resized_pixels
    from bincls.inference.predict import Predictor

    run = tmp_path / trained_sample_run.name
    shutil.copytree(trained_sample_run, run)
    done = me.export_mobile(run, "tflite")
    assert done.path == run / "best.tflite" and done.report.passed
    assert done.report.max_prob_diff <= 1e-3 and done.report.label_agreement == 1.0
    info = json.loads(done.metadata.read_text())
    assert info["input"]["dtype"] == "uint8" and info["input"]["shape"] == [1, 48, 48, 3]
    assert info["class_names"] == ["ants", "bees"] and info["verification"]["passed"] is True
    assert info["outputs"]["probabilities"].startswith("[1, 2]") and info["format"] == "bincls-tflite/1"
    # Independently of the export's own check: the interpreter on a few sample photos.
    files = sorted((SAMPLE / "bees").iterdir())[:5]
    runner = Interpreter(model_path=str(done.path)).get_signature_runner()
    for f, pred in zip(files, Predictor(run / "best.pt", device="cpu").predict_many([str(f) for f in files])):
        out = runner(image=resized_pixels(np.asarray(load_rgb(f)), 48)[None])
        assert set(out) == {"probabilities", "logit", "ood_score"}
        assert abs(float(out["probabilities"][0, 1]) - pred.p_class1) <= 1e-3


@pytest.mark.slow
def test_coreml_has_its_image_input_outputs_and_metadata_and_says_what_linux_cannot_check(
    trained_sample_run, tmp_path
):
    ct = pytest.importorskip("coremltools", reason="Core ML's converter is an optional extra: bincls[mobile]")
    run = tmp_path / trained_sample_run.name
    shutil.copytree(trained_sample_run, run)
    done = me.export_mobile(run, "coreml")
    assert done.path == run / "best.mlpackage" and (done.path / "Manifest.json").is_file()
    spec = ct.utils.load_spec(str(done.path))
    assert spec.description.input[0].type.imageType.width == 48
    assert [o.name for o in spec.description.output] == ["probabilities", "logit", "ood_score"]
    assert json.loads(spec.description.metadata.userDefined["bincls"])["class_names"] == ["ants", "bees"]
    info = json.loads(done.metadata.read_text())
    if sys.platform != "darwin":
        assert done.report is None and info["verification"]["passed"] is None
        assert "Core ML runs only on Apple systems" in done.summary()
