"""ONNX export: the file runs in onnxruntime and gives PyTorch's logits on real images; JSON and CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from bincls import BinclsError
from bincls.inference.export import export_onnx
from bincls.inference.predict import Predictor
from bincls.models import build_model, model_config
from bincls.models.checkpoint import make_checkpoint
from bincls.paths import SAMPLE_DATA
from bincls.training.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[2]


def checkpoint_in_run(tmp_path: Path, name: str, size: int) -> Path:
    """A random-init model saved as best.pt in a run folder (export does not care how good it is)."""
    torch.manual_seed(0)
    cfg = model_config(name, img_size=size)
    run = RunFolder.create(tmp_path / "runs", name)
    run.write_config({"model": name, "threshold": 0.7})
    return run.save_checkpoint("best.pt", make_checkpoint(build_model(cfg), cfg, ["ants", "bees"]))


def real_batch(pred: Predictor, n: int = 5) -> torch.Tensor:
    files = sorted((SAMPLE_DATA / "ants").iterdir())[:2] + sorted((SAMPLE_DATA / "bees").iterdir())[: n - 2]
    return torch.stack([pred.to_tensor(f) for f in files])


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("small-cnn", 64), ("resnet18", 64)])
def test_onnx_matches_pytorch_on_real_images(tmp_path, name, size):
    ckpt = checkpoint_in_run(tmp_path, name, size)
    done = export_onnx(ckpt)
    assert done.onnx == ckpt.with_suffix(".onnx") and done.metadata == ckpt.with_name("best.onnx.json")
    pred = Predictor(ckpt, device="cpu")
    x = real_batch(pred)
    with torch.no_grad():
        expected = pred.model(x).numpy()
    assert expected.std() > 1e-4, "the images must give different logits, or the comparison proves little"
    session = ort.InferenceSession(str(done.onnx), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("image", "logit") and inp.type == "tensor(float)"
    got = session.run(None, {"image": x.numpy()})[0]
    assert got.shape == (5, 1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    one = session.run(None, {"image": x[:1].numpy()})[0]  # the batch axis is dynamic
    np.testing.assert_allclose(one, expected[:1], rtol=1e-4, atol=1e-4)

    info = json.loads(done.metadata.read_text())
    assert info["class_names"] == ["ants", "bees"] and info["threshold"] == 0.7, "the run's saved threshold"
    assert info["input"]["layout"] == "NCHW" and info["input"]["dtype"] == "float32"
    pre = info["input"]["preprocessing"]
    assert pre["img_size"] == size and pre["mean"] == list(pred.preprocess.mean)
    assert pre["std"] == list(pred.preprocess.std)
    assert "sigmoid" in info["output"]["meaning"] and info["output"]["shape"] == ["batch", 1]


@pytest.mark.slow
def test_cli_export_writes_where_told(tmp_path):
    ckpt = checkpoint_in_run(tmp_path, "seed-lenet", 32)
    out = tmp_path / "exported" / "model.onnx"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bincls", "export", str(ckpt), "--format", "onnx", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(out), str(out) + ".json"]
    assert out.is_file() and json.loads(Path(str(out) + ".json").read_text())["model_file"] == "model.onnx"
    assert not ckpt.with_suffix(".onnx").exists()


def test_export_refuses_bad_targets(tmp_path):
    with pytest.raises(BinclsError, match="does not exist"):
        export_onnx(tmp_path / "missing.pt")
    ckpt = checkpoint_in_run(tmp_path, "seed-lenet", 32)
    with pytest.raises(BinclsError, match=r"\.onnx"):
        export_onnx(ckpt, out=tmp_path / "model.bin")
    with pytest.raises(BinclsError, match="does not exist"):
        export_onnx(ckpt, out=tmp_path / "no" / "such" / "model.onnx")
