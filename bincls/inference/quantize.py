"""INT8 static quantization of an exported Scorer with onnxruntime's own tools, calibrated on training images.

Only the Scorer part is quantized: the preprocessing graph (exact integer arithmetic) is composed in
front of it afterwards, so no quantization step ever touches the pixels. QDQ format, weights per
channel, uint8 activations and int8 weights: onnxruntime's recommendation for x86 CPUs with VNNI,
and QDQ files are plain ONNX that other runtimes (TensorRT, Triton's onnxruntime backend) read too.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
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


class _Tensors(CalibrationDataReader):
    """Hands onnxruntime's calibrator one normalized image [1, 3, S, S] at a time."""

    def __init__(self, input_name: str, tensors: list[np.ndarray]):
        self.input_name = input_name
        self.items = iter(tensors)

    def get_next(self) -> dict | None:
        x = next(self.items, None)
        return None if x is None else {self.input_name: x}


def quantize_scorer(scorer: onnx.ModelProto, calibration: list[np.ndarray]) -> onnx.ModelProto:
    """The Scorer graph (normalized float input) in INT8, activations calibrated on `calibration`."""
    input_name = scorer.graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="bincls-int8-") as tmp:
        src, prepared, out = (Path(tmp) / n for n in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save(scorer, src)
        # Shape inference and graph clean-up first, as onnxruntime's quantization guide asks.
        quant_pre_process(str(src), str(prepared))
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs its advice at WARNING on every run
        try:
            quantize_static(
                str(prepared), str(out), _Tensors(input_name, calibration),
                quant_format=QuantFormat.QDQ, per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            )  # fmt: skip
        finally:
            logging.getLogger().setLevel(quiet)
        return onnx.load(str(out))
