"""INT8 static quantization of an exported Scorer with onnxruntime's own tools, calibrated on training images.

Only the model's body is quantized: the convolutions up to the pooled features. The head, test-time
augmentation's average, the calibration and the out-of-distribution detector stay fp32: quantizing the
logit made P(class 1) jump in steps of about 0.04 (a temperature below 1 widens them), and on a
calibrated mobilenet_v2 it changed 2 of 153 labels where keeping them fp32 changed 1; the Mahalanobis
distance squares small differences of normalized features under a large precision matrix: quantized
too, it was off by 570 on scores of about 600 (by 79 with only the body quantized; fp32 export: 1e-4
relative; `bincls serve --int8` scores images near the detector's threshold again in fp32). Only the
detector's matrix is stored in int8 (`weight_only_int8`, folded back to fp32 when the file is loaded):
in fp32 it was two thirds of the INT8 file of a mobilenet_v2 (9.05 MB, 1.7x smaller than fp32; now
4.37 MB, 3.6x), and it moves the score by 0.16% at most. The preprocessing graph (exact integer
arithmetic) is composed in front afterwards, so no quantization step touches the pixels. Activation ranges are
the mean of each calibration image's min and max (`CalibMovingAverage`), not the extremes over all of them: on
a hymenoptera mobilenet_v2 the extremes lost 1.3 points of accuracy (largest P difference 0.084, mean 0.0069),
the mean 0.7 (0.052, 0.0058); percentile (99.99) and entropy calibration, 300 calibration images, symmetric
int8 activations and keeping the depthwise or the first and last convolutions in fp32 did no better in
accuracy (the first convolution stays fp32 all the same, for speed: see `quantize_scorer`).
QDQ format, weights per channel, uint8 activations and int8 weights: onnxruntime's recommendation for x86 CPUs
with VNNI; QDQ files are plain ONNX that other runtimes (TensorRT, Triton's onnxruntime backend) read
too.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

# Spread over both classes; calibration runs the model once per image, so more only makes exports slower.
CALIBRATION_IMAGES = 100
# Where the ONNX exporter records each node's torch modules, e.g. "['', 'scorer', 'scorer.model.head']".
SCOPES = "pkg.torch.onnx.name_scopes"


class _Tensors(CalibrationDataReader):
    """Hands onnxruntime's calibrator one normalized image [1, 3, S, S] at a time."""

    def __init__(self, input_name: str, tensors: list[np.ndarray]):
        self.input_name = input_name
        self.items = iter(tensors)

    def get_next(self) -> dict | None:
        x = next(self.items, None)
        return None if x is None else {self.input_name: x}


def outside_the_body(scorer: onnx.ModelProto, head_modules: list[str]) -> list[str]:
    """Names of the nodes to keep in fp32: the head's (`head_modules`, as named inside the model) and the
    Scorer's own arithmetic, the out-of-distribution detector included; the model's body is quantized."""
    heads = [f"'scorer.model.{name}'" for name in head_modules]
    keep = []
    for node in scorer.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == SCOPES), None)
        if scopes is None:
            continue  # an exporter that records no scopes: leave the choice to onnxruntime
        if "'scorer.model." not in scopes or any(h in scopes for h in heads):
            keep.append(node.name)
    return keep


def detector_weights(scorer: onnx.ModelProto) -> list[str]:
    """The initializers the out-of-distribution detector multiplies by (MatMul's second input): its
    Cholesky factor, 1280 x 1280 fp32 on mobilenet_v2, two thirds of an INT8 file that keeps it."""
    inits = {t.name for t in scorer.graph.initializer}
    found = []
    for node in scorer.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == SCOPES), "")
        if node.op_type == "MatMul" and "'scorer.ood'" in scopes and node.input[1] in inits:
            found.append(node.input[1])
    return sorted(set(found))


def _int8_per_column(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per column (per output channel of x @ w): (int8 values, scales)."""
    scale = np.abs(w).max(axis=0) / 127
    scale[scale == 0] = 1.0  # a column of zeros (the last of a triangle without its diagonal)
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale.astype(np.float32)


def weight_only_int8(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """Each initializer in `names` (a matrix the graph multiplies by) stored as int8 with one scale per
    column, turned back into fp32 by the graph: a quarter of the bytes, and the MatMul and its
    activations stay fp32 (quantized activations put the detector's score off by 570 on ~600).

    The diagonal stays fp32: w = int8 * scale + diag. The detector's Cholesky factor is lower-triangular
    with a diagonal ~80x its other entries, so one scale per column sized for the diagonal rounded the
    rest away: on a hymenoptera mobilenet_v2 the score moved by up to 2% (56 near the threshold, one flag
    of 138 face photos changed); without the diagonal, by up to 0.15% (2.5; no flag changed). fp16
    would halve the bytes, not quarter them: the INT8 file would stay under 3x smaller than fp32.

    Cast and Mul rather than DequantizeLinear: onnxruntime keeps DequantizeLinear in the graph for its
    QDQ fusions and ran it on every image (19 -> 26-32 ms per image, 1 thread); nodes of initializers
    only are folded into one fp32 matrix when the session loads, so the MatMul costs what it did."""
    inits = {t.name: t for t in model.graph.initializer}
    nodes = list(model.graph.node)
    for name in names:
        w = numpy_helper.to_array(inits[name]).astype(np.float32)
        diag = np.diag(w).copy()
        q, scale = _int8_per_column(w - np.diag(diag))
        model.graph.initializer.remove(inits[name])
        model.graph.initializer.extend([
            numpy_helper.from_array(q, f"{name}_int8"), numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(diag, f"{name}_diagonal"),
        ])  # fmt: skip
        first = next(i for i, n in enumerate(nodes) if name in n.input)  # the graph stays in order
        nodes[first:first] = _dequantized(name)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _dequantized(name: str) -> list[onnx.NodeProto]:
    """Nodes computing `name` = float(name_int8) * name_scale + diag(name_diagonal)."""
    node = helper.make_node
    return [
        node("Cast", [f"{name}_int8"], [f"{name}_float"], to=onnx.TensorProto.FLOAT, name=f"{name}_Cast"),
        node("Mul", [f"{name}_float", f"{name}_scale"], [f"{name}_off_diagonal"], name=f"{name}_Scale"),
        node("EyeLike", [f"{name}_float"], [f"{name}_eye"], name=f"{name}_EyeLike"),
        node("Mul", [f"{name}_eye", f"{name}_diagonal"], [f"{name}_diag"], name=f"{name}_Diagonal"),
        node("Add", [f"{name}_off_diagonal", f"{name}_diag"], [name], name=f"{name}_Add"),
    ]


def without_duplicates(model: onnx.ModelProto) -> onnx.ModelProto:
    """One copy of each identical initializer. Test-time augmentation runs the model twice, and
    onnxruntime's Conv+BatchNorm fusion gives each run its own copy of the weights: twice the size."""
    first: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    kept = []
    for t in model.graph.initializer:
        key = (t.data_type, tuple(t.dims), t.raw_data or t.SerializeToString())
        if key in first:
            rename[t.name] = first[key]
        else:
            first[key] = t.name
            kept.append(t)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    return model


def quantize_scorer(
    scorer: onnx.ModelProto, calibration: list[np.ndarray], head_modules: list[str]
) -> onnx.ModelProto:
    """The Scorer graph (normalized float input) in INT8, activations calibrated on `calibration`."""
    input_name = scorer.graph.input[0].name
    # The first convolution too: with 3 input channels its INT8 kernel took longer than its fp32 one
    # (1.2 ms against 0.7 per image with mirror TTA, mobilenet_v2) for no gain in size.
    first_conv = [n.name for n in scorer.graph.node if n.op_type == "Conv"][:1]
    keep_fp32 = outside_the_body(scorer, head_modules) + first_conv
    with tempfile.TemporaryDirectory(prefix="bincls-int8-") as tmp:
        src, prepared, out = (Path(tmp) / n for n in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save(scorer, src)
        # Shape inference and graph clean-up first, as onnxruntime's quantization guide asks (node
        # names survive it). ONNX's own shape inference: onnxruntime's symbolic one is meant for
        # transformers, and it failed on the graph of an earlier (k-NN) detector.
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs its advice at WARNING on every run
        try:
            quantize_static(
                str(prepared), str(out), _Tensors(input_name, calibration),
                quant_format=QuantFormat.QDQ, per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep_fp32,
                extra_options={"CalibMovingAverage": True},
            )  # fmt: skip
        finally:
            logging.getLogger().setLevel(quiet)
        return without_duplicates(weight_only_int8(onnx.load(str(out)), detector_weights(scorer)))
