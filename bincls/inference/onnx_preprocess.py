"""The ONNX graph from uint8 RGB pixels to the normalized tensor a model was trained on, bit for bit.

Training (and `bincls predict`) resizes with torchvision's `Resize(antialias=True)` on a uint8 image,
which on CPU runs torch's native uint8 kernel: PIL's algorithm, a horizontal then a vertical pass, each
with triangle-filter weights rounded to int16 fixed point and the pass's result rounded back to uint8.
ONNX's own `Resize` (linear, antialias) computes in float and differs by one level on some pixels,
which moved probabilities by up to 0.0013 on hymenoptera; so the graph below does the fixed-point
arithmetic itself: the weights are computed in float64 as torch computes them, each pass gathers the
taps (uint8) and multiplies them with the weights' two bytes in one `MatMulInteger` (exact int32).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bincls.data.transforms import Preprocess


class _Graph:
    """A few lines of bookkeeping so that the graph below reads like the arithmetic it does."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def _name(self, hint: str) -> str:
        return f"{self.prefix}{hint}_{len(self.nodes) + len(self.initializers)}"

    def const(self, value, dtype) -> str:
        name = self._name("const")
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs) -> str:
        out = self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def f64(self, value: float) -> str:
        return self.const(value, np.float64)

    def i64(self, value) -> str:
        return self.const(value, np.int64)


def _axis_weights(g: _Graph, size: str, out: int) -> tuple[str, str, str]:
    """torch's uint8 antialiased bilinear taps for one axis of `size` (int64 [1]) input pixels.

    Returns (indices int64 [out, K], weight bytes uint8 [out, 2, K] (high, low), precision int32 [1]).
    Follows `_compute_indices_min_size_weights_aa` and `_compute_index_ranges_int16_weights` of
    aten/src/ATen/native/cpu/UpSampleKernel.cpp, operation for operation (float64 throughout).
    """
    n = g.op("Cast", size, to=TensorProto.DOUBLE)
    scale = g.op("Div", n, g.f64([out]))
    upscale = g.op("Less", scale, g.f64([1.0]))
    support = g.op("Where", upscale, g.f64([1.0]), scale)
    invscale = g.op("Where", upscale, g.f64([1.0]), g.op("Div", g.f64([1.0]), scale))
    # Taps per output pixel: ceil(support) * 2 + 1, support = max(size / out, 1).
    ceil = g.op("Max", g.op("Div", g.op("Add", size, g.i64([out - 1])), g.i64([out])), g.i64([1]))
    taps = g.op("Add", g.op("Mul", ceil, g.i64([2])), g.i64([1]))
    centre = g.op("Mul", scale, g.op("Add", g.const(np.arange(out), np.float64), g.f64(0.5)))
    xmin = g.op("Max", g.op("Floor", g.op("Add", g.op("Sub", centre, support), g.f64(0.5))), g.f64(0.0))
    j = g.op("Range", g.f64(0.0), g.op("Cast", g.op("Squeeze", taps), to=TensorProto.DOUBLE), g.f64(1.0))
    column = [1]  # [out] -> [out, 1], to broadcast against the taps [K]
    idx = g.op("Add", g.op("Unsqueeze", xmin, g.i64(column)), j)  # [out, K], float64 (exact integers)
    x = g.op("Mul", g.op("Add", g.op("Sub", idx, g.op("Unsqueeze", centre, g.i64(column))), g.f64(0.5)),
             invscale)  # fmt: skip
    ax = g.op("Abs", x)
    # torch's window [xmin, xmax) holds every tap where the triangle is not zero, cut at the image's edge:
    # the triangle itself, zeroed past the edge, gives the same weights.
    tri = g.op("Where", g.op("Less", ax, g.f64(1.0)), g.op("Sub", g.f64(1.0), ax), g.f64(0.0))
    w = g.op("Where", g.op("Less", idx, n), tri, g.f64(0.0))
    w = g.op("Div", w, g.op("ReduceSum", w, g.i64(column), keepdims=1))
    # The largest precision (< 22 bits) at which the largest weight still fits in int16.
    fits = g.op("Less", g.op("Floor", g.op("Add", g.f64(0.5), g.op("Mul", g.op("ReduceMax", w, keepdims=0),
                g.f64(2.0 ** np.arange(1, 23))))), g.f64(2.0**15))  # fmt: skip
    precision = g.op("ReduceSum", g.op("Cast", fits, to=TensorProto.INT32), keepdims=1)
    w_int = g.op("Floor", g.op("Add", g.op("Mul", w, g.op("Pow", g.f64(2.0), g.op("Cast", precision,
                 to=TensorProto.DOUBLE))), g.f64(0.5)))  # fmt: skip
    w_int = g.op("Cast", w_int, to=TensorProto.INT32)
    high = g.op("Div", w_int, g.const([256], np.int32))
    low = g.op("Sub", w_int, g.op("Mul", high, g.const([256], np.int32)))
    as_u8 = [g.op("Unsqueeze", g.op("Cast", b, to=TensorProto.UINT8), g.i64(column)) for b in (high, low)]
    weights = g.op("Concat", *as_u8, axis=1)  # [out, 2, K]
    last = g.op("Sub", size, g.i64([1]))
    indices = g.op("Cast", g.op("Min", idx, g.op("Cast", last, to=TensorProto.DOUBLE)), to=TensorProto.INT64)
    return indices, weights, precision


def _resize_first_axis(g: _Graph, rows: str, indices: str, weights: str, precision: str) -> str:
    """uint8 [n, R] -> uint8 [out, 1, R]: one fixed-point pass along the first axis."""
    taps = g.op("Gather", rows, indices, axis=0)  # [out, K, R]
    both = g.op("MatMulInteger", weights, taps)  # [out, 2, R] int32: sums with the high and the low byte
    acc = g.op("MatMul", g.const([[256, 1]], np.int32), both)  # [out, 1, R]: high * 256 + low
    one = g.const([1], np.int32)
    exponent = g.op("Cast", g.op("Sub", precision, one), to=TensorProto.DOUBLE)
    half = g.op("Cast", g.op("Pow", g.f64(2.0), exponent), to=TensorProto.INT32)
    full = g.op("Mul", half, g.const([2], np.int32))
    rounded = g.op("Div", g.op("Add", acc, half), full)  # non-negative: integer division is the shift
    clipped = g.op("Clip", rounded, g.const(0, np.int32), g.const(255, np.int32))
    return g.op("Cast", clipped, to=TensorProto.UINT8)


def preprocess_model(
    pre: Preprocess, opset: int, ir_version: int, batched: bool = False,
    input_name: str = "image", output_name: str = "normalized",
) -> onnx.ModelProto:  # fmt: skip
    """uint8 RGB pixels [H, W, 3] (or [N, H, W, 3]) of any size -> float32 [1 or N, 3, S, S], normalized."""
    g = _Graph("preprocess/")
    side = pre.img_size
    x = input_name if batched else g.op("Unsqueeze", input_name, g.i64([0]))  # [N, H, W, 3]
    shape = g.op("Shape", x)
    n, h, w = (g.op("Slice", shape, g.i64([k]), g.i64([k + 1])) for k in range(3))
    s, three, minus = g.i64([side]), g.i64([3]), g.i64([-1])
    # Only 2-D transposes (onnxruntime has a fast path for them): [N*H, W*3] -> [W*3, N*H] = [W, 3*N*H].
    nh = g.op("Mul", n, h)
    cols = g.op("Transpose", g.op("Reshape", x, g.op("Concat", nh, minus, axis=0)), perm=[1, 0])
    cols = g.op("Reshape", cols, g.op("Concat", w, minus, axis=0))
    cols = _resize_first_axis(g, cols, *_axis_weights(g, w, side))  # horizontal: [S, 3*N*H]
    lines = g.op("Transpose", g.op("Reshape", cols, g.op("Concat", minus, h, axis=0)), perm=[1, 0])
    lines = _resize_first_axis(g, lines, *_axis_weights(g, h, side))  # vertical: [S, S*3*N]
    planes = g.op("Transpose", g.op("Reshape", lines, g.op("Concat", g.i64([side * side]), minus, axis=0)),
                  perm=[1, 0])  # [3*N, S*S]  # fmt: skip
    planes = g.op("Reshape", planes, g.op("Concat", three, n, s, s, axis=0))
    nchw = g.op("Transpose", planes, perm=[1, 0, 2, 3])  # [N, 3, S, S]: whole planes move
    # torchvision: to float32, times float32(1/255), minus mean, divided by std (in that order).
    x01 = g.op("Mul", g.op("Cast", nchw, to=TensorProto.FLOAT), g.const(np.float32(1.0 / 255), np.float32))
    mean = g.const(np.asarray(pre.mean, np.float32).reshape(1, 3, 1, 1), np.float32)
    std = g.const(np.asarray(pre.std, np.float32).reshape(1, 3, 1, 1), np.float32)
    centred = g.op("Sub", x01, mean)
    g.nodes.append(helper.make_node("Div", [centred, std], [output_name], name="preprocess/out"))
    shape_in = ["batch", "height", "width", 3] if batched else ["height", "width", 3]
    batch = "batch" if batched else 1
    graph = helper.make_graph(
        g.nodes, "bincls_preprocess",
        [helper.make_tensor_value_info(input_name, TensorProto.UINT8, shape_in)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, 3, side, side])],
        initializer=g.initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    onnx.checker.check_model(model)
    return model
