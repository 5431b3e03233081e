"""Does an exported ONNX file give `bincls predict`'s answer? Measured on real images, before it is written.

The PyTorch side is `Predictor.predict_many`, exactly what `bincls predict` runs. The ONNX side is fed
what any program would feed it: the file decoded by PIL (EXIF orientation applied), as uint8 pixels;
for the float-tensor export, the normalized tensor the Predictor makes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bincls.data.images import ImageProblem, load_rgb
from bincls.inference.onnx_predict import session


@dataclass(frozen=True)
class Tolerance:
    """What an export may differ from PyTorch by before it is refused."""

    max_prob_diff: float | None  # largest |P(class 1) ONNX - PyTorch|; None: not a criterion
    max_label_flips: int  # images whose label differs ...
    max_flip_share: float  # ... or this share of the images, whichever allows more
    max_accuracy_loss: float  # in points, when the images have labels (one image allowed on small sets)


# fp32 runs the same arithmetic as PyTorch (the preprocessing is bit-exact): differences are float noise
# (about 1e-6), so anything near the promised 0.002 means a broken export. INT8 changes the arithmetic:
# it is held to the accuracy and the labels, and its probability difference is reported.
TOLERANCES = {
    "fp32": Tolerance(max_prob_diff=1e-3, max_label_flips=0, max_flip_share=0.0, max_accuracy_loss=0.0),
    "int8": Tolerance(max_prob_diff=None, max_label_flips=1, max_flip_share=0.02, max_accuracy_loss=1.0),
}


@dataclass
class ParityReport:
    """ONNX against PyTorch on the same images; `passed` says whether the export is kept."""

    onnx_file: str
    precision: str  # "fp32" or "int8"
    source: str  # "test split", "val split", or "shipped sample images (not this model's classes)"
    images: int
    max_prob_diff: float
    mean_prob_diff: float
    label_agreement: float  # share of images given the same label
    disagreements: list[str]
    accuracy_pytorch: float | None  # None when the images have no labels for this model
    accuracy_onnx: float | None
    size_bytes: int
    latency_ms: float  # p50 per image, one thread, preprocessing included
    max_ood_diff: float | None = None  # out-of-distribution score; None when the model has no detector
    ood_flag_disagreements: list[str] = field(default_factory=list)  # flagged on one side only
    reference: str = "PyTorch"  # what the size and latency below are compared with
    reference_size_bytes: int | None = None  # for INT8: the fp32 ONNX file
    reference_latency_ms: float | None = None
    skipped: list[str] = field(default_factory=list)  # unreadable files (both sides refuse them)
    tolerance: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def faster(self) -> bool | None:
        """Did this file measure faster than its reference (INT8 against fp32, timed side by side)? None
        when there is no reference. Pages and servers call INT8 "faster" only when this is True."""
        if not self.reference_latency_ms:
            return None
        return self.latency_ms < self.reference_latency_ms

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "faster": self.faster}

    @classmethod
    def from_dict(cls, saved: dict) -> ParityReport:
        """A report read back from a run's JSON: the derived keys (`passed`, `faster`) are recomputed."""
        return cls(**{k: v for k, v in saved.items() if k not in ("passed", "faster")})

    def summary(self) -> str:
        """A few lines for the CLI and the page."""
        lines = [
            f"Verified {self.precision} ONNX against PyTorch on {self.images} images ({self.source}):",
            f"  largest P difference {self.max_prob_diff:.2g} (mean {self.mean_prob_diff:.2g}), "
            f"same label on {self.label_agreement:.1%}",
        ]
        if self.accuracy_pytorch is not None:
            lines.append(f"  accuracy: PyTorch {self.accuracy_pytorch:.1%}, ONNX {self.accuracy_onnx:.1%} "
                         f"({(self.accuracy_onnx - self.accuracy_pytorch) * 100:+.1f} points)")  # fmt: skip
        if self.max_ood_diff is not None:
            lines.append(f"  out-of-distribution score: largest difference {self.max_ood_diff:.2g}, "
                         f"{len(self.ood_flag_disagreements)} image(s) flagged on one side only")  # fmt: skip
        size = f"  size {self.size_bytes / 2**20:.2f} MB, CPU latency p50 {self.latency_ms:.1f} ms per image"
        if self.reference_size_bytes:
            ref_mb, ratio = self.reference_size_bytes / 2**20, self.reference_size_bytes / self.size_bytes
            speed = self.reference_latency_ms / self.latency_ms if self.latency_ms else 0.0
            pace = f"{speed:.1f}x faster" if self.faster else "not faster here"
            size += f" (fp32: {ref_mb:.2f} MB, {self.reference_latency_ms:.1f} ms; {ratio:.1f}x smaller, "
            size += f"{pace})"
        lines.append(size)
        lines += [f"  FAILED: {f}" for f in self.failures] or ["  passed"]
        return "\n".join(lines)


def pixels_of(path: str) -> np.ndarray:
    """What a program gives the ONNX file: the image decoded by PIL in full, EXIF orientation applied."""
    return np.asarray(load_rgb(path))


class _Feeder:
    """Runs one image through an ONNX session the way its input wants it, and times it."""

    def __init__(self, sess: ort.InferenceSession, predictor, kind: str, batched: bool):
        self.sess, self.predictor, self.kind, self.batched = sess, predictor, kind, batched
        self.name = sess.get_inputs()[0].name

    def feed(self, path: str) -> np.ndarray:
        if self.kind == "tensor":
            return self.predictor.transform(load_rgb(path)).unsqueeze(0).numpy()
        px = pixels_of(path)
        return px[None] if self.batched else px

    def scores(self, x: np.ndarray) -> tuple[float, float, float]:
        """(P(class 1), out-of-distribution score, seconds)."""
        start = time.perf_counter()
        probs, ood = self.sess.run(["probabilities", "ood_score"], {self.name: x})
        return float(probs[0, 1]), float(ood[0]), time.perf_counter() - start


def _latency_ms(feeders: list[_Feeder], inputs: list[np.ndarray], rounds: int = 2) -> list[float]:
    """p50 ms per image of each feeder, timed in turn on each input (and `rounds` times over), so that
    other work on the machine slows them alike: INT8 is called faster only when it was, side by side."""
    times: list[list[float]] = [[] for _ in feeders]
    for _ in range(rounds):
        for x in inputs:
            for feeder, out in zip(feeders, times):
                out.append(feeder.scores(x)[2])
    return [float(np.median(t) * 1000) for t in times]


def check_parity(
    model: bytes, predictor, files: list[str], labels: list[int] | None, source: str, *, kind: str = "pixels",
    batched: bool = False, precision: str = "fp32", onnx_file: str = "", reference_model: bytes | None = None,
) -> ParityReport:  # fmt: skip
    """Run `model` (serialized ONNX) and the Predictor on `files`; the report says whether they agree."""
    preds = predictor.predict_many(files)
    feeder = _Feeder(session(model), predictor, kind, batched)
    torch_p, onnx_p, truth, names, skipped, inputs, oods = [], [], [], [], [], [], []
    for i, (path, pred) in enumerate(zip(files, preds)):
        if pred.error is not None:  # both sides decode with load_rgb: a file one refuses, the other does too
            skipped.append(f"{path}: {pred.error}")
            continue
        x = feeder.feed(path)
        p1, ood, _ = feeder.scores(x)
        onnx_p.append(p1)
        torch_p.append(pred.p_class1)
        oods.append((pred.ood_score, ood))
        names.append(path)
        truth.append(labels[i] if labels is not None else -1)
        if len(inputs) < 20:
            inputs.append(x)
    if not names:
        raise ImageProblem(source, "no readable image to verify the export on")
    report = _compare(np.array(torch_p), np.array(onnx_p), np.array(truth), names, predictor.threshold,
                      labels is not None)  # fmt: skip
    report.update(onnx_file=onnx_file, precision=precision, source=source, skipped=skipped,
                  size_bytes=len(model))  # fmt: skip
    if predictor.scorer.has_ood:
        report.update(_compare_ood(oods, names, predictor.scorer.ood_threshold))
    if reference_model is None:
        (report["latency_ms"],) = _latency_ms([feeder], inputs)
    else:
        ref = _Feeder(session(reference_model), predictor, kind, batched)
        report["latency_ms"], ref_ms = _latency_ms([feeder, ref], inputs)
        report.update(reference="fp32 ONNX", reference_size_bytes=len(reference_model),
                      reference_latency_ms=ref_ms)  # fmt: skip
    result = ParityReport(**report)
    result.tolerance = asdict(TOLERANCES[precision])
    result.failures = _failures(result, TOLERANCES[precision])
    return result


def _compare(torch_p, onnx_p, truth, names, threshold: float, labelled: bool) -> dict:
    diff = np.abs(onnx_p - torch_p)
    torch_label, onnx_label = torch_p >= threshold, onnx_p >= threshold
    differ = torch_label != onnx_label
    return {
        "images": len(names),
        "max_prob_diff": float(diff.max()),
        "mean_prob_diff": float(diff.mean()),
        "label_agreement": float(1 - differ.mean()),
        "disagreements": [Path(n).name for n, d in zip(names, differ) if d],
        "accuracy_pytorch": float((torch_label == truth).mean()) if labelled else None,
        "accuracy_onnx": float((onnx_label == truth).mean()) if labelled else None,
    }


def _compare_ood(oods: list[tuple[float, float]], names: list[str], threshold: float) -> dict:
    torch_s, onnx_s = np.array(oods, dtype=np.float64).T
    differ = (torch_s > threshold) != (onnx_s > threshold)
    return {"max_ood_diff": float(np.abs(onnx_s - torch_s).max()),
            "ood_flag_disagreements": [Path(n).name for n, d in zip(names, differ) if d]}  # fmt: skip


def _failures(r: ParityReport, tol: Tolerance) -> list[str]:
    out = []
    if tol.max_prob_diff is not None and r.max_prob_diff > tol.max_prob_diff:
        out.append(f"P(class 1) differs by up to {r.max_prob_diff:.2g} (tolerance {tol.max_prob_diff:g})")
    allowed = max(tol.max_label_flips, int(tol.max_flip_share * r.images))
    if len(r.disagreements) > allowed:
        out.append(f"{len(r.disagreements)} of {r.images} images get another label (at most {allowed} "
                   "allowed): " + ", ".join(r.disagreements[:5]))  # fmt: skip
    if len(r.ood_flag_disagreements) > allowed:
        out.append(f"{len(r.ood_flag_disagreements)} of {r.images} images are flagged out-of-distribution on "
                   f"one side only (at most {allowed} allowed)")  # fmt: skip
    if r.accuracy_pytorch is not None:
        loss = (r.accuracy_pytorch - r.accuracy_onnx) * 100
        allowed_loss = max(tol.max_accuracy_loss, 100 / r.images if tol.max_accuracy_loss else 0.0)
        if loss > allowed_loss + 1e-9:
            out.append(f"accuracy drops by {loss:.1f} points (at most {allowed_loss:.1f} allowed)")
    return out
