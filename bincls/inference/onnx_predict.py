"""Predict with an exported ONNX file in onnxruntime: what `bincls serve` runs.

Images are decoded exactly as `bincls predict` decodes them (`load_rgb`: the whole file, EXIF
orientation, transparency on white). The file's own graph resizes and normalizes them bit for bit as
training did; the server takes a faster road to the same tensor (`fast_preprocessing`).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort
from PIL import Image

from bincls.data.images import ImageProblem, load_rgb, to_rgb
from bincls.data.transforms import Preprocess, eval_tensor
from bincls.errors import BinclsError

EXPORT_FORMAT = "bincls-onnx/2"
NORMALIZED = "normalized"  # the tensor inside a pixel-input export where its network begins


def session(model: bytes | str | os.PathLike, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session, one intra-op thread by default: callers run several side by side,
    which on a few cores serves more images per second than one session spreading each image."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # notes about unused initializers and the like are not the user's business
    src = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def metadata_in_file(path: Path) -> dict:
    """The JSON the exporter stores in the ONNX file's metadata (key "bincls")."""
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError, OSError, ...: the file is not usable
        raise BinclsError(f"Cannot read {path} as an ONNX file: {str(exc)[:200]}") from None
    props = {p.key: p.value for p in model.metadata_props}
    if "bincls" not in props:
        raise BinclsError(f"{path} was not exported by bincls (no {path.name}.json beside it and no bincls "
                          "metadata inside): export it with `bincls export RUN`.")  # fmt: skip
    return json.loads(props["bincls"])


def read_export(onnx_path: str | os.PathLike) -> dict:
    """The JSON beside an exported file (with its parity report), else the copy inside the file."""
    path = Path(onnx_path)
    if not path.is_file():
        raise BinclsError(f"{path} does not exist: give an ONNX file made by `bincls export`.")
    beside = path.with_name(path.name + ".json")
    if beside.is_file():
        try:
            return json.loads(beside.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BinclsError(f"Cannot read {beside}: {exc}") from None
    return metadata_in_file(path)


# INT8 answers near the threshold are scored again in fp32 within this many times the largest
# difference the export's check measured: INT8's error has a long tail. On the 397 hymenoptera images
# a mobilenet_v2's INT8 file moved P by up to 0.159, 3x the 0.052 its check on 153 of them saw (99% of
# images: under 0.053); 3 labels changed. Within 2x of the check's figure, 3.0% of the images were scored
# again and 1 label still differed; within 3.5x, 4.8% and none.
BORDERLINE_FACTOR = 3.5
MIN_BORDERLINE = 0.02


class OnnxPredictor:
    """An exported pixel-input model loaded once; `predict` gives the server's answer for one image.

    The threshold is the one given, else the one in the export's JSON. With `exact` (the fp32 export
    of the same checkpoint beside an INT8 one), an image whose INT8 P(class 1) lies near the threshold
    (or its out-of-distribution score near the detector's) is scored again in fp32: INT8's speed, fp32's
    labels and flags.
    """

    def __init__(self, onnx_path: str | os.PathLike, threshold: float | None = None, threads: int = 1,
                 exact: str | os.PathLike | None = None):  # fmt: skip
        self.path = Path(onnx_path)
        self.info = read_export(self.path)
        inp = self.info.get("input", {})
        if self.info.get("format") != EXPORT_FORMAT or inp.get("dtype") != "uint8":
            raise BinclsError(
                f"{self.path} takes {inp.get('dtype', 'unknown')} input ({self.info.get('format')}): "
                "serving needs the pixel-input export (`bincls export RUN`, the default)."
            )
        self.class_names: list[str] = list(self.info["class_names"])
        self.threshold = float(threshold if threshold is not None else self.info["threshold"])
        self.ood_threshold: float | None = self.info.get("ood_threshold")
        self.batched = len(inp["shape"]) == 4
        self.session, self.threads = session(self.path, threads), threads
        self.network, self.recipe = None, None
        self.exact = OnnxPredictor(exact, self.threshold, threads) if exact else None
        checked = self.info.get("verification") or {}
        self.borderline = max(BORDERLINE_FACTOR * checked.get("max_prob_diff", 0.0), MIN_BORDERLINE)
        self.borderline_ood = max(BORDERLINE_FACTOR * (checked.get("max_ood_diff") or 0.0), MIN_BORDERLINE)

    def pixels(self, source: bytes | str | os.PathLike | BinaryIO | Image.Image, name: str) -> np.ndarray:
        """uint8 RGB [H, W, 3], decoded as `bincls predict` decodes; `ImageProblem` says why not."""
        if isinstance(source, Image.Image):
            return np.asarray(to_rgb(source, name))
        if isinstance(source, bytes):
            if not source:
                raise ImageProblem(name, "empty file (0 bytes)")
            source = io.BytesIO(source)
        return np.asarray(load_rgb(source, name=name))

    def fast_preprocessing(self) -> OnnxPredictor:
        """Resize and normalize with `bincls predict`'s own code (torchvision) and run the file's network
        alone: the same tensor as the graph's integer arithmetic makes (tests check it bit for bit), in
        0.6 ms instead of 2.4 for a 500 x 375 photo. Files without the recipe keep their graph's."""
        pre = self.info.get("input", {}).get("preprocessing") or {}
        model = onnx.load(os.fspath(self.path))
        made = {out for node in model.graph.node for out in node.output}
        if {"img_size", "mean", "std"} <= pre.keys() and NORMALIZED in made:
            outputs = [o.name for o in model.graph.output]
            net = onnx.utils.Extractor(model).extract_model([NORMALIZED], outputs)
            self.network = session(net.SerializeToString(), self.threads)
            self.recipe = Preprocess(int(pre["img_size"]), tuple(pre["mean"]), tuple(pre["std"]))
        if self.exact is not None:
            self.exact.fast_preprocessing()
        return self

    def score(self, pixels: np.ndarray) -> tuple[float, float]:
        """(P(class 1), out-of-distribution score) of one image's pixels."""
        if self.network is not None:
            feed = {NORMALIZED: eval_tensor(pixels, self.recipe)[None].numpy()}
            probs, ood = self.network.run(["probabilities", "ood_score"], feed)
        else:
            x = pixels[None] if self.batched else pixels
            probs, ood = self.session.run(["probabilities", "ood_score"], {"image": np.ascontiguousarray(x)})
        p1, score = float(probs[0, 1]), float(ood[0])
        if self.exact is not None and (
            abs(p1 - self.threshold) < self.borderline
            or (self.ood_threshold is not None and abs(score - self.ood_threshold) < self.borderline_ood)
        ):
            return self.exact.score(pixels)
        return p1, score

    def answer(self, name: str, p1: float, ood_score: float) -> dict:
        """The server's JSON for one image: {filename, class_name, probability, p_class1, ood}."""
        label = int(p1 >= self.threshold)
        ood = None if self.ood_threshold is None else bool(ood_score > self.ood_threshold)
        return {"filename": name, "class_name": self.class_names[label],
                "probability": p1 if label else 1 - p1, "p_class1": p1, "ood": ood}  # fmt: skip

    def predict(self, source, name: str | None = None) -> dict:
        name = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "image")
        return self.answer(name, *self.score(self.pixels(source, name)))

    def describe(self) -> dict:
        """What `GET /model` says: classes, threshold, preprocessing, provenance, verification."""
        keep = ("model", "class_names", "precision", "input", "outputs", "decision", "temperature",
                "ood_threshold", "tta", "provenance", "verification")  # fmt: skip
        out = {k: self.info.get(k) for k in keep}
        if self.exact is not None:
            note = "images with P(class 1) (or the ood score) this near its threshold are scored in fp32"
            out["borderline"] = {"model_file": self.exact.path.name, "within": self.borderline,
                                 "within_ood": self.borderline_ood, "note": note}  # fmt: skip
        return {**out, "threshold": self.threshold, "model_file": self.path.name}
