"""`bincls export RUN --format tflite|coreml`: the model for phone apps (LiteRT on Android, Core ML on iOS).

The phone's own camera and image libraries decode and resize, so the file takes the image already
squashed to the model's size, S x S RGB (what every app has after one scale call); the scaling to
[0, 1], the normalization, the model, the calibration and the out-of-distribution score are inside.
LiteRT (.tflite): uint8 [1, S, S, 3], channels last, as Android bitmaps give them. Core ML (.mlpackage):
an RGB image input (Vision or a CVPixelBuffer; Core ML hands the model 0-255 values).

The converters are optional extras (`pip install bincls[mobile]`): litert-torch for LiteRT, coremltools
for Core ML. A .tflite file is checked before it is written, as the ONNX export is: the LiteRT interpreter
runs on Linux, fed the pixels bincls itself resizes to S x S (torchvision's antialiased resize), against
`bincls predict` on the run's test split, within the ONNX export's fp32 tolerances. Core ML runs only on
Apple systems: there its numbers are checked the same way; elsewhere only the converted file's
description (input, outputs, metadata) is, and the report says so.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bincls.errors import BinclsError
from bincls.inference.export import VERIFY_IMAGES, export_metadata, verification_images
from bincls.inference.mobile_check import check_coreml_spec, check_runner

FORMATS = {"tflite": ".tflite", "coreml": ".mlpackage"}
CONVERTERS = {"tflite": "litert-torch", "coreml": "coremltools"}
OUTPUTS = ("probabilities", "logit", "ood_score")


@dataclass
class MobileExport:
    path: Path
    metadata: Path
    info: dict
    report: object | None  # ParityReport when the file could be run here
    not_checked: list[str] = field(default_factory=list)

    def summary(self) -> str:
        runtime = "LiteRT" if self.path.suffix == ".tflite" else "Core ML"
        lines = [self.report.summary().replace("ONNX", runtime)] if self.report is not None else []
        lines += [f"  not checked here: {n}" for n in self.not_checked]
        return "\n".join(lines)


class _Normalized(nn.Module):
    """Pixels 0-255 in, the Scorer's outputs by name: scaling and normalization as training did."""

    def __init__(self, scorer: nn.Module, mean, std, channels_last: bool):
        super().__init__()
        self.scorer, self.channels_last = scorer, channels_last
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = image.permute(0, 3, 1, 2) if self.channels_last else image
        # torchvision's order: to float times 1/255, minus the mean, divided by the std
        x = (x.float() * torch.tensor(1.0 / 255, dtype=torch.float32) - self.mean) / self.std
        logit, p1, ood = self.scorer(x)
        return {"probabilities": torch.stack([1 - p1, p1], dim=1), "logit": logit.float(), "ood_score": ood}


def export_mobile(
    checkpoint: str | os.PathLike,
    fmt: str,
    out: str | os.PathLike | None = None,
    *,
    threshold: float | None = None,
    verify_images: int = VERIFY_IMAGES,
) -> MobileExport:
    """Write CHECKPOINT (or a run folder's best.pt) as `fmt` ("tflite" or "coreml"), with a JSON beside it."""
    from bincls.inference.evaluate import find_checkpoint
    from bincls.inference.predict import Predictor

    if fmt not in FORMATS:
        raise BinclsError(f"Phone formats are {', '.join(FORMATS)}; got {fmt!r}.")
    ckpt_path, run = find_checkpoint(checkpoint)
    out = _target(out, ckpt_path, fmt)
    converter = require_converter(fmt)
    predictor = Predictor(ckpt_path, device="cpu", threshold=threshold)
    files, labels, source = verification_images(run, verify_images)
    info = export_metadata(
        predictor.ckpt,
        predictor.threshold,
        out.name,
        scorer=predictor.scorer,
        checkpoint=ckpt_path,
        run_id=run.id if run else None,
    )
    info.update(format=f"bincls-{fmt}/1", input=phone_input(fmt, predictor.preprocess))
    info["outputs"] = {k: v.replace("[N", "[1", 1) for k, v in info["outputs"].items()}  # one image a call
    info["provenance"]["exported_with"][CONVERTERS[fmt]] = importlib.metadata.version(CONVERTERS[fmt])
    with tempfile.TemporaryDirectory(prefix="bincls-mobile-") as tmp:
        made = Path(tmp) / out.name
        if fmt == "tflite":
            report, not_checked = _tflite(converter, predictor, made, files, labels, source)
        else:
            report, not_checked = _coreml(converter, predictor, made, info, files, labels, source)
        info["verification"] = report.to_dict() if report is not None else {"passed": None}
        info["verification"]["not_checked"] = not_checked
        if report is not None and not report.passed:
            raise BinclsError(
                f"{out} was not written: the {fmt} file does not give bincls predict's answers.\n"
                + report.summary()
            )
        meta = out.with_name(out.name + ".json")
        _replace(made, out)
    meta.write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return MobileExport(out, meta, info, report, not_checked)


def require_converter(fmt: str):
    """The converter's module, or a `BinclsError` saying how to install it (and which torch it needs)."""
    name = CONVERTERS[fmt]
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        raise BinclsError(
            f"--format {fmt} needs {name}, an optional extra: pip install 'bincls[mobile]' "
            f"(or pip install {name})."
        ) from None
    try:
        if fmt == "tflite":
            import litert_torch

            return litert_torch
        import coremltools

        return coremltools
    except Exception as exc:  # noqa: BLE001 - a converter built for another torch fails in many ways
        needs = [r for r in importlib.metadata.requires(name) or [] if r.startswith("torch")]
        raise BinclsError(
            f"{name} is installed but cannot be loaded ({str(exc).strip()[:200]}). It asks for "
            f"{', '.join(needs) or 'a particular torch'}; this environment has torch {torch.__version__}. "
            f"Install {name} with bincls in a virtual environment with a torch it supports, and export there."
        ) from None


def phone_input(fmt: str, pre) -> dict:
    """What the phone file takes, for the JSON beside it."""
    size = pre.img_size
    resize = (
        f"the whole image squashed to {size} x {size} (no crop), bilinear with antialiasing as "
        "bincls does (torchvision/PIL); a phone's own scaling differs slightly"
    )
    common = {
        "color": "RGB",
        "resize": resize,
        "img_size": size,
        "mean": list(pre.mean),
        "std": list(pre.std),
        "inside": "x / 255, (x - mean) / std, the model, calibration, out-of-distribution score",
    }
    if fmt == "tflite":
        return {"name": "image", "dtype": "uint8", "layout": "NHWC", "shape": [1, size, size, 3], **common}
    return {
        "name": "image",
        "type": "Core ML image (RGB)",
        "shape": [1, 3, size, size],
        "values": "0-255 as Core ML gives them",
        **common,
    }


def _tflite(litert_torch, predictor, made: Path, files, labels, source):
    from ai_edge_litert.interpreter import Interpreter

    size = predictor.preprocess.img_size
    module = _Normalized(predictor.scorer, predictor.preprocess.mean, predictor.preprocess.std, True).eval()
    sample = {"image": torch.zeros(1, size, size, 3, dtype=torch.uint8)}
    try:
        with quiet():
            litert_torch.convert(module, sample_kwargs=sample).export(str(made))
    except Exception as exc:  # noqa: BLE001 - the converter raises many types; the user needs the gist
        raise BinclsError(f"Converting the model to LiteRT failed: {str(exc).strip()[:300]}") from None
    runner = Interpreter(model_path=str(made), num_threads=1).get_signature_runner()

    def run(pixels: np.ndarray) -> tuple[float, float]:
        out = runner(image=pixels[None])
        return float(out["probabilities"][0, 1]), float(out["ood_score"][0])

    report = check_runner(
        run,
        predictor,
        files,
        labels,
        source,
        precision="fp32",
        file_name=made.name,
        size_bytes=made.stat().st_size,
    )
    return report, [f"scaling on the phone: the check feeds bincls' own {size} x {size} resize"]


def _coreml(ct, predictor, made: Path, info: dict, files, labels, source):
    size = predictor.preprocess.img_size
    module = _Tuple(_Normalized(predictor.scorer, predictor.preprocess.mean, predictor.preprocess.std, False))
    image = ct.ImageType(name="image", shape=(1, 3, size, size), color_layout=ct.colorlayout.RGB)
    try:
        with quiet():
            program = torch.export.export(module.eval(), (torch.zeros(1, 3, size, size),))
            program = program.run_decompositions({})
            model = ct.convert(
                program,
                convert_to="mlprogram",
                minimum_deployment_target=ct.target.iOS16,
                inputs=[image],
                outputs=[ct.TensorType(name=n) for n in OUTPUTS],
                compute_precision=ct.precision.FLOAT32,
            )
    except Exception as exc:  # noqa: BLE001 - the converter raises many types; the user needs the gist
        raise BinclsError(f"Converting the model to Core ML failed: {str(exc).strip()[:300]}") from None
    names = info["class_names"]
    model.short_description = f"{names[0]} or {names[1]} (bincls): P({names[1]}) >= {info['threshold']:.4g}"
    model.user_defined_metadata["bincls"] = json.dumps(
        {k: info[k] for k in ("class_names", "threshold", "ood_threshold", "temperature", "model")}
    )
    model.save(str(made))
    check_coreml_spec(model.get_spec(), size, names)
    if sys.platform != "darwin":
        return None, [
            "numbers: Core ML runs only on Apple systems; export on a Mac to have them checked "
            "against bincls predict (the input, outputs and metadata were checked here)"
        ]

    def run(pixels: np.ndarray) -> tuple[float, float]:  # pragma: no cover - Apple systems only
        from PIL import Image

        out = model.predict({"image": Image.fromarray(pixels)})
        return float(np.asarray(out["probabilities"]).reshape(-1)[1]), float(
            np.asarray(out["ood_score"]).ravel()[0]
        )

    report = check_runner(
        run, predictor, files, labels, source, precision="fp32", file_name=made.name, size_bytes=_size(made)
    )
    return report, [f"scaling on the phone: the check feeds bincls' own {size} x {size} resize"]


class _Tuple(nn.Module):
    """Core ML's converter takes a tuple of outputs (named in `convert`), not a dict."""

    def __init__(self, module: _Normalized):
        super().__init__()
        self.module = module

    def forward(self, image: torch.Tensor):
        out = self.module(image)
        return tuple(out[n] for n in OUTPUTS)


@contextlib.contextmanager
def quiet():
    """The converters print progress bars, log lines and warnings about their own internals: the CLI
    prints the check's report instead (errors still surface as exceptions)."""
    loggers = [logging.getLogger(n) for n in ("coremltools", "absl", "litert_torch")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            with contextlib.redirect_stderr(io.StringIO()):
                yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def default_output(ckpt_path: Path, fmt: str) -> Path:
    return ckpt_path.with_suffix(FORMATS[fmt])


def _target(out, ckpt_path: Path, fmt: str) -> Path:
    out = Path(out) if out else default_output(ckpt_path, fmt)
    if out.suffix.lower() != FORMATS[fmt]:
        raise BinclsError(f"The {fmt} file name must end in {FORMATS[fmt]}, got {out}.")
    if not out.parent.is_dir():
        raise BinclsError(f"Folder {out.parent} does not exist: create it or choose another output file.")
    if out.is_dir() and not (out / "Manifest.json").is_file():
        raise BinclsError(f"{out} is a folder that is not a Core ML package: choose another name.")
    return out


def _replace(made: Path, out: Path) -> None:
    """Move the checked file (or .mlpackage folder) into place, replacing an earlier export."""
    if out.is_dir():
        shutil.rmtree(out)
    shutil.move(str(made), str(out))


def _size(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )
