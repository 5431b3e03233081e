"""ONNX export: PIL pixels in, `bincls predict`'s answer out, checked before it is kept; JSON, INT8, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imagefactory as fac
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image, ImageOps

from bincls import BinclsError
from bincls.data.images import load_rgb
from bincls.inference import export as export_module
from bincls.inference.export import export_onnx
from bincls.inference.onnx_predict import BORDERLINE_FACTOR, OnnxPredictor, metadata_in_file, read_export
from bincls.inference.parity import TOLERANCES, ParityReport, _failures
from bincls.inference.predict import Predictor
from bincls.models import build_model, model_config
from bincls.models.checkpoint import make_checkpoint
from bincls.paths import SAMPLE_DATA
from bincls.runs.folder import RunFolder

ROOT = Path(__file__).resolve().parents[2]


def checkpoint_in_run(tmp_path: Path, name: str, size: int) -> Path:
    """A random-init model saved as best.pt in a run folder without a split (its quality does not matter)."""
    torch.manual_seed(0)
    cfg = model_config(name, img_size=size)
    run = RunFolder.create(tmp_path / "runs", name)
    run.write_config({"model": name, "threshold": 0.7})
    return run.save_checkpoint("best.pt", make_checkpoint(build_model(cfg), cfg, ["ants", "bees"]))


def sample_files(n: int = 20) -> list[Path]:
    files = sorted(SAMPLE_DATA.rglob("*.jpg"))
    return [files[i] for i in np.linspace(0, len(files) - 1, n).astype(int)]


def run_onnx(sess: ort.InferenceSession, x: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": x})))


def test_pixel_export_gives_bincls_predicts_answer_on_pil_pixels(exported_sample_run, tmp_path):
    sess = ort.InferenceSession(str(exported_sample_run / "best.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.type, inp.shape) == ("image", "tensor(uint8)", ["height", "width", 3])
    assert [o.name for o in sess.get_outputs()] == ["probabilities", "logit", "ood_score"]
    pred = Predictor(exported_sample_run / "best.pt", device="cpu")
    files = sample_files()
    expected = [p.p_class1 for p in pred.predict_many([str(f) for f in files])]
    assert np.std(expected) > 1e-4, "answers must differ by more than the tolerance, or this proves little"
    for f, want in zip(files, expected):
        out = run_onnx(sess, np.asarray(Image.open(f).convert("RGB")))  # what any program would feed
        assert out["probabilities"].shape == (1, 2) and out["logit"].shape == (1,)
        assert abs(out["probabilities"][0, 1] - want) < 1e-5, f
        assert abs(out["probabilities"][0].sum() - 1) < 1e-6
        assert abs(1 / (1 + np.exp(-out["logit"][0])) - want) < 1e-5  # no temperature in this run
        assert out["ood_score"][0] == 0  # no detector yet: a constant 0
    # A phone photo stored sideways: callers apply the EXIF orientation, as bincls does.
    rotated = fac.jpeg_with_orientation(tmp_path / "rotated.jpg", w=120, h=60, orientation=6)
    pixels = np.asarray(ImageOps.exif_transpose(Image.open(rotated)).convert("RGB"))
    np.testing.assert_array_equal(pixels, np.asarray(load_rgb(rotated)))
    got = run_onnx(sess, pixels)["probabilities"][0, 1]
    assert abs(got - pred.predict(rotated).p_class1) < 1e-5


def test_the_servers_preprocessing_gives_the_graphs_numbers_on_every_size(exported_sample_run):
    """`bincls serve` resizes the decoded pixels with torchvision (as `bincls predict` does) and runs the
    file's network alone; the file's own graph (integer arithmetic) must give the same numbers."""
    graph = OnnxPredictor(exported_sample_run / "best.onnx")
    fast = OnnxPredictor(exported_sample_run / "best.onnx").fast_preprocessing()
    assert fast.network is not None and graph.network is None
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
              for h, w in [(1, 1), (3, 500), (375, 500), (64, 64), (1000, 7), (225, 223)]]  # fmt: skip
    pixels += [graph.pixels(f.read_bytes(), f.name) for f in sorted(SAMPLE_DATA.rglob("*.jp*g"))[:12]]
    for px in pixels:
        (p_graph, ood_graph), (p_fast, ood_fast) = graph.score(px), fast.score(px)
        assert abs(p_fast - p_graph) <= 1e-6, px.shape
        assert abs(ood_fast - ood_graph) <= 1e-6 * max(1.0, ood_graph), px.shape


def test_json_beside_the_file_and_inside_it(exported_sample_run):
    onnx_path = exported_sample_run / "best.onnx"
    info = json.loads((exported_sample_run / "best.onnx.json").read_text())
    assert info["format"] == "bincls-onnx/2" and info["model_file"] == "best.onnx"
    assert info["class_names"] == ["ants", "bees"] and info["threshold"] == 0.5
    assert info["precision"] == "fp32"
    assert info["input"]["dtype"] == "uint8" and info["input"]["shape"] == ["height", "width", 3]
    assert info["input"]["preprocessing"]["inside_graph"] and info["input"]["preprocessing"]["img_size"] == 48
    prov = info["provenance"]
    assert prov["run_id"] == exported_sample_run.name and prov["epoch"] == 1
    digest = hashlib.sha256((exported_sample_run / "best.pt").read_bytes()).hexdigest()
    assert prov["checkpoint_sha256"] == digest
    check = info["verification"]
    assert check["passed"] and check["source"] == "test and val splits" and check["images"] >= 5
    assert check["max_prob_diff"] < 1e-5 and check["label_agreement"] == 1.0 and not check["failures"]
    assert check["accuracy_onnx"] == check["accuracy_pytorch"]
    assert info["model_sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    assert read_export(onnx_path) == info
    inside = metadata_in_file(onnx_path)  # a copied .onnx alone still says what it is
    assert inside == {k: v for k, v in info.items() if k not in ("verification", "model_sha256")}


def test_parity_failures_name_what_differs():
    def report(**kw) -> ParityReport:
        base = dict(onnx_file="m.onnx", precision="fp32", source="test split", images=100, max_prob_diff=1e-7,
                    mean_prob_diff=1e-8, label_agreement=1.0, disagreements=[], accuracy_pytorch=0.9,
                    accuracy_onnx=0.9, size_bytes=10, latency_ms=1.0)  # fmt: skip
        return ParityReport(**{**base, **kw})

    assert _failures(report(), TOLERANCES["fp32"]) == []
    (msg,) = _failures(report(max_prob_diff=0.0021), TOLERANCES["fp32"])
    assert "0.0021" in msg and "tolerance" in msg
    flipped = report(disagreements=["a.jpg"], label_agreement=0.99)
    assert "a.jpg" in _failures(flipped, TOLERANCES["fp32"])[0]
    # INT8: probabilities move, labels and accuracy may not (more than 2 % / 1 point, one image on small sets)
    assert _failures(report(max_prob_diff=0.05, disagreements=["a.jpg"]), TOLERANCES["int8"]) == []
    assert "accuracy drops by 2.0" in _failures(report(accuracy_onnx=0.88), TOLERANCES["int8"])[0]
    assert _failures(report(images=20, accuracy_onnx=0.85), TOLERANCES["int8"]) == []  # one image of 20


@pytest.mark.slow
def test_an_export_that_disagrees_is_refused_and_nothing_written(trained_sample_run, tmp_path, monkeypatch):
    run = Path(shutil.copytree(trained_sample_run, tmp_path / trained_sample_run.name))
    # The one-epoch sample model's P barely moves between images (0.51 +- 0.001), so a wrong mean moves
    # it by less than the tolerance too; a sharper calibration gives the logit a trained model's spread.
    ckpt = torch.load(run / "best.pt", weights_only=False)
    torch.save({**ckpt, "temperature": 0.1}, run / "best.pt")
    real = export_module.preprocess_model

    def off_by_a_little(pre, *args, **kw):  # the kind of mistake that goes unnoticed: a slightly wrong mean
        return real(type(pre)(pre.img_size, tuple(m + 0.02 for m in pre.mean), pre.std), *args, **kw)

    monkeypatch.setattr(export_module, "preprocess_model", off_by_a_little)
    with pytest.raises(BinclsError, match=r"(?s)was not written.*FAILED: P\(class 1\) differs by up to"):
        export_onnx(run)
    assert not [p.name for p in run.iterdir() if "onnx" in p.name]


@pytest.mark.slow
def test_float_tensor_and_batched_exports_match_pytorch(tmp_path):
    ckpt = checkpoint_in_run(tmp_path, "resnet18", 64)
    done = export_onnx(ckpt, input="tensor")
    assert done.onnx == ckpt.with_name("best.tensor.onnx") and done.report.passed
    assert done.report.source.startswith("shipped sample") and done.report.accuracy_onnx is None
    assert done.info["threshold"] == 0.7, "the run's saved threshold"
    pred = Predictor(ckpt, device="cpu")
    x = torch.stack([pred.to_tensor(f) for f in sample_files(5)])
    sess = ort.InferenceSession(str(done.onnx), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float)" and sess.get_inputs()[0].shape[1:] == [3, 64, 64]
    got = run_onnx(sess, x.numpy())["probabilities"][:, 1]
    np.testing.assert_allclose(got, pred.probabilities(x).numpy(), atol=1e-5)
    batched = export_onnx(ckpt, out=tmp_path / "batched.onnx", batched=True)
    assert batched.info["input"]["shape"] == ["batch", "height", "width", 3] and batched.report.passed
    same_size = np.stack([np.asarray(load_rgb(f).resize((90, 60))) for f in sample_files(3)])
    sess = ort.InferenceSession(str(batched.onnx), providers=["CPUExecutionProvider"])
    want = [pred.predict(Image.fromarray(p)).p_class1 for p in same_size]
    np.testing.assert_allclose(run_onnx(sess, same_size)["probabilities"][:, 1], want, atol=1e-5)


@pytest.mark.slow
def test_int8_calibrates_on_training_images_leaves_the_pixels_alone_and_reports(trained_sample_run, tmp_path):
    run = Path(shutil.copytree(trained_sample_run, tmp_path / trained_sample_run.name))
    done = export_onnx(run, int8=True)
    assert done.onnx.name == "best.int8.onnx" and done.report.passed, done.report.summary()
    r = done.report
    assert r.precision == "int8" and r.reference == "fp32 ONNX" and r.reference_size_bytes > r.size_bytes
    assert r.latency_ms > 0 and r.reference_latency_ms > 0 and r.accuracy_pytorch is not None
    model = onnx.load(str(done.onnx))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    # No quantization step touches the pixels: the preprocessing nodes come through unchanged.
    quantized = [n.name for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert quantized and not [name for name in quantized if name.startswith("preprocess/")]
    assert all(n.name.startswith("preprocess/") for n in model.graph.node[: ops.index("MatMulInteger")])
    # Served with the fp32 file beside it: images near the threshold are scored again in fp32.
    fp32 = export_onnx(run)
    both = OnnxPredictor(done.onnx, exact=fp32.onnx)
    assert both.borderline == max(BORDERLINE_FACTOR * r.max_prob_diff, 0.02)
    exact, fast = OnnxPredictor(fp32.onnx), OnnxPredictor(done.onnx)
    for f in sample_files(30):
        px = both.pixels(f.read_bytes(), f.name)
        (p8, _), (p32, _), (got, _) = fast.score(px), exact.score(px), both.score(px)
        assert got == (p32 if abs(p8 - 0.5) < both.borderline else p8)
        assert (got >= 0.5) == (p32 >= 0.5), f
    lone = tmp_path / "lone.pt"
    shutil.copy(run / "best.pt", lone)
    with pytest.raises(BinclsError, match="INT8 needs the training images"):
        export_onnx(lone, int8=True)


@pytest.mark.slow
def test_cli_export_prints_the_check_and_writes_where_told(tmp_path):
    ckpt = checkpoint_in_run(tmp_path, "seed-lenet", 32)
    out = tmp_path / "exported" / "model.onnx"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bincls", "export", str(ckpt), "--format", "onnx", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-2:] == [str(out), str(out) + ".json"]
    assert lines[0].startswith("Verified fp32 ONNX against PyTorch on 60 images") and "  passed" in lines
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
    with pytest.raises(BinclsError, match="pixels, tensor"):
        export_onnx(ckpt, input="jpeg")
    with pytest.raises(BinclsError, match="verify-images must be at least 1"):
        export_onnx(ckpt, verify_images=0)


@pytest.mark.slow
def test_calibration_the_detector_and_tta_travel_into_the_onnx(trained_sample_run, tmp_path):
    """A checkpoint carrying a temperature, a Platt bias, mirror TTA and a Mahalanobis detector, as training
    writes them: the file carries them, the check compares them, and the server flags what predict flags."""
    from bincls.inference.ood import fit_detector, load_detector
    from bincls.models.checkpoint import read_checkpoint

    run = Path(shutil.copytree(trained_sample_run, tmp_path / trained_sample_run.name))
    plain = Predictor(run / "best.pt", device="cpu", tta=True)
    fitted, tested = sample_files(20), sample_files(9)[1:]

    def features(files: list[Path]) -> torch.Tensor:  # as training fits it: mirror-averaged with TTA
        with torch.no_grad():
            x = torch.stack([plain.to_tensor(f) for f in files])
            return (plain.model.forward_features(x) + plain.model.forward_features(x.flip(-1))) / 2

    labels = torch.tensor([int("bees" in f.parts) for f in fitted])
    detector = fit_detector(features(fitted), labels, features(tested), false_flag_rate=0.5)  # some of each
    ckpt = read_checkpoint(run / "best.pt")
    ckpt.update(temperature=0.5, logit_bias=0.3, tta=True, ood=detector.state())
    torch.save(ckpt, run / "best.pt")
    pred = Predictor(run / "best.pt", device="cpu")  # what `bincls predict` loads
    assert pred.scorer.tta and pred.scorer.bias == 0.3
    assert type(pred.scorer.ood).__name__ == "MahalanobisDetector" and load_detector(ckpt["ood"]) is not None
    done = export_onnx(run)
    r = done.report
    assert r.passed and not r.ood_flag_disagreements, r.summary()
    assert done.info["temperature"] == 0.5 and done.info["logit_bias"] == 0.3 and done.info["tta"] is True
    assert done.info["ood_threshold"] == pytest.approx(detector.threshold)
    assert "sigmoid(logit / 0.5 + 0.3)" in done.info["outputs"]["probabilities"]
    sess = ort.InferenceSession(str(done.onnx), providers=["CPUExecutionProvider"])
    served = OnnxPredictor(done.onnx)
    cmd = [sys.executable, "-m", "bincls", "predict", str(run / "best.pt"), *map(str, tested), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    cli = json.loads(proc.stdout)
    for f, want in zip(tested, cli):
        out = run_onnx(sess, np.asarray(load_rgb(f)))
        assert abs(out["probabilities"][0, 1] - want["p_class1"]) < 1e-5
        assert out["ood_score"][0] == pytest.approx(want["ood_score"], rel=1e-4)
        assert served.predict(f.read_bytes(), f.name)["ood"] is want["ood"], f  # the server's flag
    assert {p["ood"] for p in cli} == {True, False}
    assert r.max_ood_diff <= 1e-4 * max(p["ood_score"] for p in cli)
    # INT8 quantizes the body only (the detector stays fp32) and, served with the fp32 file beside it,
    # scores images near either threshold again in fp32: the same flags again.
    int8 = export_onnx(run, int8=True)
    weights = {t.name: t.data_type for t in onnx.load(str(int8.onnx)).graph.initializer}
    assert any("quantized" in w for w in weights)
    assert not [w for w in weights if "ood" in w and "quantized" in w], "activations: fp32"
    assert weights["scorer.ood.chol_int8"] == onnx.TensorProto.INT8 and "scorer.ood.chol" not in weights
    both = OnnxPredictor(int8.onnx, exact=done.onnx)
    assert both.borderline_ood == max(BORDERLINE_FACTOR * int8.report.max_ood_diff, 0.02)
    served_fast = OnnxPredictor(int8.onnx, exact=done.onnx).fast_preprocessing()  # what `serve` runs
    for f, want in zip(tested, cli):
        assert both.predict(f.read_bytes(), f.name)["ood"] is want["ood"], f
        assert served_fast.predict(f.read_bytes(), f.name) == both.predict(f.read_bytes(), f.name)


def test_the_current_export_is_of_these_checkpoint_bytes_and_this_threshold(exported_sample_run, tmp_path):
    """What the app offers for download: the export beside the checkpoint, only while it is not stale."""
    from bincls.inference.evaluate import save_threshold
    from bincls.inference.export import current_export

    run = Path(shutil.copytree(exported_sample_run, tmp_path / "a" / exported_sample_run.name))
    onnx, info = current_export(run)
    assert onnx == run / "best.onnx" and info["verification"]["passed"]
    assert current_export(run, int8=True) is None, "never exported in INT8"
    save_threshold(run, 0.42)
    assert current_export(run) is None, "the file's JSON still says the old threshold"
    retrained = Path(shutil.copytree(exported_sample_run, tmp_path / "b" / exported_sample_run.name))
    ckpt = torch.load(retrained / "best.pt", weights_only=False)
    torch.save({**ckpt, "epoch": 99}, retrained / "best.pt")
    assert current_export(retrained) is None


def test_weight_only_int8_keeps_a_triangular_matrix_product_within_a_fraction_of_a_percent():
    """What the detector's Cholesky factor goes through in the INT8 export: int8 with per-column scales,
    the diagonal fp32, fp32 activations; folded back to fp32 when the session loads."""
    from onnx import TensorProto, helper, numpy_helper

    from bincls.inference.quantize import _int8_per_column, weight_only_int8

    rng = np.random.default_rng(0)
    n = 256  # the detector's shape: a diagonal ~80x the other entries, as on a trained mobilenet_v2
    w = np.tril(rng.normal(0, 1, (n, n))) + np.diag(rng.uniform(60, 100, n))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", n])],
        [numpy_helper.from_array(w.astype(np.float32), "w")],
    )  # fmt: skip
    fp32 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = weight_only_int8(onnx.ModelProto.FromString(fp32.SerializeToString()), ["w"])
    onnx.checker.check_model(model, full_check=True)
    inits = {t.name: t for t in model.graph.initializer}
    assert "w" not in inits and inits["w_int8"].data_type == TensorProto.INT8
    assert len(model.SerializeToString()) < 0.27 * len(fp32.SerializeToString())
    x = rng.normal(0, 0.03, (50, n)).astype(np.float32)  # differences of normalized features
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x})[0]
    want, score = x @ w, ((x @ w) ** 2).sum(1)
    np.testing.assert_allclose(got, want, atol=2e-3 * np.abs(want).max())
    error = np.abs((got**2).sum(1) / score - 1).max()  # the detector's score: the product's squared norm
    q, scale = _int8_per_column(w)  # the diagonal quantized with the rest: scales sized for the diagonal
    naive = np.abs((((x @ (q * scale)) ** 2).sum(1)) / score - 1).max()
    assert error < 0.005 and naive > 5 * error, (error, naive)


@pytest.mark.slow  # quantizes a 224 px mobilenet_v2
def test_int8_of_a_mobilenet_v2_with_a_detector_is_3x_smaller_than_fp32():
    """The detector's 1280 x 1280 Cholesky factor (6.5 MB in fp32) was two thirds of the INT8 file: stored in
    int8 too, the whole file is >= 3x smaller. Sizes do not depend on training: random weights."""
    from bincls.inference.export import export_scorer, head_modules
    from bincls.inference.ood import MahalanobisDetector
    from bincls.inference.quantize import quantize_scorer
    from bincls.inference.scoring import Scorer

    torch.manual_seed(0)
    model = build_model(model_config("mobilenet_v2", img_size=224)).eval()
    chol = torch.tril(torch.randn(1280, 1280)) + torch.diag(torch.rand(1280) * 40 + 60)
    scorer = Scorer(model, ood=MahalanobisDetector(torch.randn(2, 1280) * 0.03, chol, threshold=500.0)).eval()
    fp32 = export_scorer(scorer, 224, "normalized")
    rng = np.random.default_rng(0)
    calibration = [rng.normal(0, 1, (1, 3, 224, 224)).astype(np.float32) for _ in range(4)]
    int8 = quantize_scorer(fp32, calibration, head_modules(model, 224))
    ratio = len(fp32.SerializeToString()) / len(int8.SerializeToString())
    assert ratio >= 3, f"only {ratio:.2f}x smaller"
    fp32_weights = [t for t in int8.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    big = [t.name for t in fp32_weights if np.prod(t.dims) > 100_000]
    assert not big, f"large fp32 tensors left: {big}"
