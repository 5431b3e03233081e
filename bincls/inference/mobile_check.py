"""Does a phone file give `bincls predict`'s answer? The ONNX export's parity report, for any runner.

The phone file takes the image already resized to S x S; the check gives it exactly what bincls itself
makes of each file before normalizing (decoded by `load_rgb`, resized by torchvision's antialiased uint8
kernel), so a difference is the converter's, not the resize's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from bincls.data.images import ImageProblem, load_rgb
from bincls.errors import BinclsError
from bincls.inference.parity import TOLERANCES, ParityReport, _compare, _compare_ood, _failures


def resized_pixels(pixels: np.ndarray, size: int) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> uint8 [size, size, 3], the whole image squashed as bincls resizes it."""
    chw = torch.from_numpy(np.ascontiguousarray(pixels).copy()).permute(2, 0, 1)
    return F.resize(chw, [size, size], antialias=True).permute(1, 2, 0).contiguous().numpy()


def check_runner(
    run: Callable[[np.ndarray], tuple[float, float]],
    predictor,
    files: list[str],
    labels: list[int] | None,
    source: str,
    *,
    precision: str,
    file_name: str,
    size_bytes: int,
) -> ParityReport:
    """`run(resized uint8 [S, S, 3]) -> (P(class 1), ood score)` against the Predictor on `files`."""
    preds = predictor.predict_many(files)
    size = predictor.preprocess.img_size
    torch_p, got_p, truth, names, skipped, oods, times = [], [], [], [], [], [], []
    for i, (path, pred) in enumerate(zip(files, preds)):
        if pred.error is not None:
            skipped.append(f"{path}: {pred.error}")
            continue
        pixels = resized_pixels(np.asarray(load_rgb(path)), size)
        start = time.perf_counter()
        p1, ood = run(pixels)
        times.append(time.perf_counter() - start)
        got_p.append(p1)
        torch_p.append(pred.p_class1)
        oods.append((pred.ood_score, ood))
        names.append(path)
        truth.append(labels[i] if labels is not None else -1)
    if not names:
        raise ImageProblem(source, "no readable image to verify the export on")
    report = _compare(
        np.array(torch_p), np.array(got_p), np.array(truth), names, predictor.threshold, labels is not None
    )
    report.update(
        onnx_file=file_name,
        precision=precision,
        source=source,
        skipped=skipped,
        size_bytes=size_bytes,
        latency_ms=float(np.median(times) * 1000),
    )
    if predictor.scorer.has_ood:
        report.update(_compare_ood(oods, names, predictor.scorer.ood_threshold))
    result = ParityReport(**report)
    result.tolerance = asdict(TOLERANCES[precision])
    result.failures = _failures(result, TOLERANCES[precision])
    return result


def check_coreml_spec(spec, size: int, class_names: list[str]) -> None:
    """What can be checked of a Core ML file without Apple's runtime: its input, outputs and metadata."""
    problems = []
    inputs = {i.name: i for i in spec.description.input}
    image = inputs.get("image")
    if len(inputs) != 1 or image is None or image.type.WhichOneof("Type") != "imageType":
        problems.append(f"one image input named 'image' expected, found {list(inputs)}")
    else:
        t = image.type.imageType
        if (t.width, t.height) != (size, size) or t.colorSpace != t.RGB:
            problems.append(
                f"input is {t.width} x {t.height} (colour space {t.colorSpace}), not {size} x {size} RGB"
            )
    outputs = [o.name for o in spec.description.output]
    if outputs != ["probabilities", "logit", "ood_score"]:
        problems.append(f"outputs are {outputs}")
    meta = dict(spec.description.metadata.userDefined)
    if "bincls" not in meta or list(json.loads(meta["bincls"])["class_names"]) != class_names:
        problems.append("the bincls metadata (class names, threshold) is missing")
    if problems:
        raise BinclsError("The Core ML file is not as intended: " + "; ".join(problems))
