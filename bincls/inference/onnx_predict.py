"""Predict with an exported ONNX file in onnxruntime: what `bincls serve` runs.

Images are decoded exactly as `bincls predict` decodes them (`load_rgb`: the whole file, EXIF
orientation, transparency on white). The file's own graph resizes and normalizes them bit for bit as
training did; the server takes a faster road to the same tensor (`fast_preprocessing`).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort
from PIL import Image

from bincls.checks import check_threshold
from bincls.data.images import ImageProblem, load_rgb, to_rgb
from bincls.data.transforms import Preprocess, eval_tensor
from bincls.errors import BinclsError
from bincls.inference.export_schema import EXPORT_FORMAT, validate_export  # noqa: F401 - EXPORT_FORMAT: its old home

NORMALIZED = "normalized"  # the tensor inside a pixel-input export where its network begins
# Protobuf's limit for one ONNX file. Larger models keep their weights in external data files, which a
# served model may not have: it is loaded from its bytes, so it cannot read files beside (or outside) it.
MAX_MODEL_BYTES = 2**31 - 1


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def session(
    model: bytes | str | os.PathLike, threads: int = 1, where: str | None = None
) -> ort.InferenceSession:
    """An onnxruntime CPU session, one intra-op thread by default: callers run several side by side,
    which on a few cores serves more images per second than one session spreading each image.
    A file onnxruntime refuses (an unknown operator, a tensor larger than its data, external data) is a
    `BinclsError` naming `where`."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # notes about unused initializers and the like are not the user's business
    src = model if isinstance(model, bytes) else os.fspath(model)
    try:
        return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for every kind of bad file
        what = where or (src if isinstance(src, str) else "the model")
        raise BinclsError(f"onnxruntime cannot load {what}: {_first_line(exc)}") from None


def read_model_bytes(path: Path) -> bytes:
    """An ONNX file's bytes, read once: what is hashed and checked is what is loaded."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise BinclsError(f"{path} is not a regular file: give an ONNX file made by `bincls export`.")
        if size > MAX_MODEL_BYTES:
            raise BinclsError(f"{path} is {size / 2**30:.1f} GiB: larger than one ONNX file can be.")
        return path.read_bytes()
    except FileNotFoundError:
        raise BinclsError(f"{path} does not exist: give an ONNX file made by `bincls export`.") from None
    except OSError as exc:
        raise BinclsError(f"Cannot read {path}: {exc.strerror or exc}") from None
    except MemoryError:
        raise BinclsError(f"Not enough memory to read {path}.") from None


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parsed(data: bytes, path: Path) -> onnx.ModelProto:
    try:
        return onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and others: the file is not usable
        raise BinclsError(f"Cannot read {path} as an ONNX file: {_first_line(exc)}") from None


def _node_tensors(nodes):
    for node in nodes:
        for attr in node.attribute:
            yield from ([attr.t] if attr.HasField("t") else []) + list(attr.tensors)
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _tensors(sub)


def _tensors(graph: onnx.GraphProto):
    """Every tensor a graph holds: initializers, sparse ones, constants in attributes, subgraphs'."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    yield from _node_tensors(graph.node)


def refuse_external_data(model: onnx.ModelProto, path: Path) -> None:
    """A served model carries its weights inside: loaded from bytes, onnxruntime would resolve an
    external data file against the server's working folder, so a file that names one is refused unread."""
    functions = (t for f in model.functions for t in _node_tensors(f.node))
    for tensor in itertools.chain(_tensors(model.graph), functions):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            raise BinclsError(f"{path} keeps tensor {tensor.name or '?'} in an external data file: a served "
                              "model holds its weights inside (`bincls export` writes one file).")


def metadata_of(data: bytes, path: Path) -> dict:
    """The JSON the exporter stores in the ONNX file's metadata (key "bincls"), checked."""
    props = {p.key: p.value for p in _parsed(data, path).metadata_props}
    if "bincls" not in props:
        raise BinclsError(f"{path} was not exported by bincls (no {path.name}.json beside it and no bincls "
                          "metadata inside): export it with `bincls export RUN`.")  # fmt: skip
    try:
        info = json.loads(props["bincls"])
    except ValueError as exc:
        raise BinclsError(f"The bincls metadata inside {path} is not JSON: {exc}") from None
    return validate_export(info, f"The bincls metadata inside {path}")


def metadata_in_file(path: str | os.PathLike) -> dict:
    """The JSON the exporter stores in the ONNX file's metadata (key "bincls")."""
    path = Path(path)
    return metadata_of(read_model_bytes(path), path)


def export_info(data: bytes, path: Path) -> dict:
    """What the export of these file bytes says of itself: the JSON beside the file (with its parity
    report) when that JSON names these very bytes (`model_sha256`), else the copy inside the file.

    A JSON beside the file that does not describe it (another model's file put in its place, or a JSON
    from an older bincls that cannot say) is refused: its check was not of this file."""
    beside = path.with_name(path.name + ".json")
    if not beside.is_file():
        return metadata_of(data, path)
    try:
        info = json.loads(beside.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BinclsError(f"Cannot read {beside}: {exc}") from None
    validate_export(info, beside)
    if info.get("model_sha256") != sha256_of(data):
        said = "names no file content (an older bincls wrote it)" if "model_sha256" not in info else (
            "describes another file (its sha256 differs)")
        raise BinclsError(f"{beside} {said}: what it says, its check included, is not of {path.name}. "
                          "Export the run again (`bincls export RUN`).")  # fmt: skip
    return info


def read_export(onnx_path: str | os.PathLike) -> dict:
    """The JSON beside an exported file (with its parity report), else the copy inside the file; checked
    against the file (`export_info`)."""
    path = Path(onnx_path)
    return export_info(read_model_bytes(path), path)


# INT8 answers near the threshold are scored again in fp32 within this many times the largest
# difference the export's check measured: INT8's error has a long tail. On the 397 hymenoptera images
# a mobilenet_v2's INT8 file moved P by up to 0.159, 3x the 0.052 its check on 153 of them saw (99% of
# images: under 0.053); 3 labels changed. Within 2x of the check's figure, 3.0% of the images were scored
# again and 1 label still differed; within 3.5x, 4.8% and none.
BORDERLINE_FACTOR = 3.5
MIN_BORDERLINE = 0.02


def borderline_width(info: dict, key: str = "max_prob_diff") -> float:
    """How near its threshold an INT8 answer is scored again in fp32 (`key`: max_ood_diff for the ood
    score), from the difference the export's check measured."""
    checked = info.get("verification") or {}
    return max(BORDERLINE_FACTOR * (checked.get(key) or 0.0), MIN_BORDERLINE)


def int8_refusal(info: dict, threshold: float) -> str | None:
    """Why serving this INT8 export (with fp32 for the images near the threshold) is not worth it, or
    None when it is: INT8 must have measured faster than fp32 in its check, and the band scored again in
    fp32 must leave most probabilities to INT8 (an INT8 file whose check saw P move by 0.17 would send
    every image within 0.595 of the threshold to fp32 as well: slower than fp32 alone)."""
    checked = info.get("verification") or {}
    int8_ms, fp32_ms = checked.get("latency_ms"), checked.get("reference_latency_ms")
    if int8_ms and fp32_ms and int8_ms >= fp32_ms:
        return (f"its check measured INT8 at {int8_ms:.1f} ms per image against fp32's {fp32_ms:.1f} ms: "
                "not faster on the machine that exported it")  # fmt: skip
    width = borderline_width(info)
    covered = min(1.0, threshold + width) - max(0.0, threshold - width)
    if covered > 0.5:
        return (f"INT8 answers within {width:.3f} of the threshold {threshold:g} ({covered:.0%} of the "
                "probability range) would be scored again in fp32")  # fmt: skip
    return None


class OnnxPredictor:
    """An exported pixel-input model loaded once; `predict` gives the server's answer for one image.

    The file is read once, checked against its JSON (`export_info`: the schema and the file's own
    sha256) and loaded from those same bytes. The threshold is the one given, else the one in the
    export's JSON. With `exact` (the fp32 export of the same checkpoint beside an INT8 one), an image whose
    INT8 P(class 1) lies near the threshold (or its out-of-distribution score near the detector's) is
    scored again in fp32: INT8's speed, fp32's labels and flags.
    """

    def __init__(self, onnx_path: str | os.PathLike, threshold: float | None = None, threads: int = 1,
                 exact: str | os.PathLike | None = None):  # fmt: skip
        self.path = Path(onnx_path)
        self._bytes = read_model_bytes(self.path)
        self.sha256 = sha256_of(self._bytes)
        self.info = export_info(self._bytes, self.path)
        inp = self.info["input"]
        if inp["dtype"] != "uint8":
            raise BinclsError(f"{self.path} takes {inp['dtype']} input: serving needs the pixel-input export "
                              "(`bincls export RUN`, the default).")  # fmt: skip
        self.class_names: list[str] = list(self.info["class_names"])
        given = threshold if threshold is not None else self.info["threshold"]
        self.threshold = check_threshold(given, "threshold")
        self.ood_threshold: float | None = self.info.get("ood_threshold")
        self.batched = len(inp["shape"]) == 4
        self._graph = _parsed(self._bytes, self.path)
        refuse_external_data(self._graph, self.path)
        self.session, self.threads = session(self._bytes, threads, where=str(self.path)), threads
        self.network, self.recipe = None, None
        self.exact = OnnxPredictor(exact, self.threshold, threads) if exact else None
        if self.exact is not None and _checkpoint_of(self.exact.info) != _checkpoint_of(self.info):
            raise BinclsError(f"{self.exact.path} is not exported from the checkpoint {self.path} was: it "
                              "cannot score that file's borderline images.")  # fmt: skip
        self.borderline = borderline_width(self.info)
        self.borderline_ood = borderline_width(self.info, "max_ood_diff")

    def pixels(self, source: bytes | str | os.PathLike | BinaryIO | Image.Image, name: str) -> np.ndarray:
        """uint8 RGB [H, W, 3], decoded as `bincls predict` decodes; `ImageProblem` says why not."""
        if isinstance(source, Image.Image):
            return np.asarray(to_rgb(source, name))
        if isinstance(source, bytes):
            if not source:
                raise ImageProblem(name, "empty file (0 bytes)")
            source = io.BytesIO(source)
        image = load_rgb(source, name=name)
        pixels = np.asarray(image)  # a copy: the decoded image goes at once, not when the caller is done
        image.close()
        return pixels

    def fast_preprocessing(self) -> OnnxPredictor:
        """Resize and normalize with `bincls predict`'s own code (torchvision) and run the file's network
        alone: the same tensor as the graph's integer arithmetic makes (tests check it bit for bit), in
        0.6 ms instead of 2.4 for a 500 x 375 photo. Files without the recipe keep their graph's."""
        pre = self.info["input"]["preprocessing"]
        model = self._graph
        made = {out for node in model.graph.node for out in node.output}
        if NORMALIZED in made:
            outputs = [o.name for o in model.graph.output]
            try:
                net = onnx.utils.Extractor(model).extract_model([NORMALIZED], outputs)
            except Exception as exc:  # noqa: BLE001 - a graph the extractor cannot follow
                raise BinclsError(f"Cannot take the network out of {self.path}: {_first_line(exc)}") from None
            self.network = session(net.SerializeToString(), self.threads, where=str(self.path))
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
        """The server's JSON for one image: {filename, class_name, probability, p_class1, ood, ood_score,
        error} (`bincls predict --json`'s fields; ood and ood_score null when the model has no detector)."""
        label = int(p1 >= self.threshold)
        has_ood = self.ood_threshold is not None
        return {"filename": name, "class_name": self.class_names[label],
                "probability": p1 if label else 1 - p1, "p_class1": p1,
                "ood": bool(ood_score > self.ood_threshold) if has_ood else None,
                "ood_score": ood_score if has_ood else None, "error": None}  # fmt: skip

    @staticmethod
    def refusal(name: str, reason: str) -> dict:
        """The answer for a file that is not a usable image: the same fields, `error` saying why."""
        return {"filename": name, "class_name": None, "probability": None, "p_class1": None, "ood": None,
                "ood_score": None, "error": reason}  # fmt: skip

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


def _checkpoint_of(info: dict) -> str | None:
    return (info.get("provenance") or {}).get("checkpoint_sha256")
