"""Export a checkpoint to ONNX, with a JSON beside it that says how to feed the model and read its output.

TorchScript is not offered: torch.jit is in maintenance mode (torch.export is its successor, and it is
what the ONNX exporter below builds on), and whoever has PyTorch can load the .pt checkpoint with
bincls itself. ONNX is the format that runs without PyTorch (onnxruntime, OpenCV, browsers, mobile).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from bincls.errors import BinclsError
from bincls.models.checkpoint import load_model, model_config_of, preprocess_of

INPUT_NAME = "image"
OUTPUT_NAME = "logit"


@dataclass
class Exported:
    onnx: Path
    metadata: Path
    info: dict


def export_metadata(ckpt: dict, threshold: float, onnx_name: str) -> dict:
    """What a program needs to use the exported model without bincls."""
    pre = preprocess_of(ckpt)
    cfg = model_config_of(ckpt)
    names = list(ckpt["class_names"])
    return {
        "format": "bincls-onnx/1",
        "model_file": onnx_name,
        "model": cfg.name,
        "class_names": names,
        "threshold": threshold,
        "input": {
            "name": INPUT_NAME,
            "layout": "NCHW",
            "dtype": "float32",
            "shape": ["batch", 3, pre.img_size, pre.img_size],
            "color": "RGB",
            "preprocessing": {
                "resize": f"squash the whole image to {pre.img_size} x {pre.img_size} (no crop), antialiased",
                "img_size": pre.img_size,
                "scale": "pixel values / 255, to [0, 1]",
                "mean": list(pre.mean),
                "std": list(pre.std),
                "normalize": "(x - mean) / std, per channel",
            },
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", 1],
            "meaning": f"one logit; sigmoid(logit) = P({names[1]}). Predict {names[1]} when that is "
                       f">= threshold, else {names[0]}.",
        },
    }


def export_onnx(
    checkpoint: str | os.PathLike, out: str | os.PathLike | None = None, threshold: float | None = None,
    opset: int | None = None,
) -> Exported:
    """Write CHECKPOINT as ONNX (default: beside it, best.pt -> best.onnx) and its JSON (best.onnx.json).

    The batch axis is dynamic; weights are stored inside the .onnx file (one file to copy). The threshold
    is the one given, else the run's saved one (config.json), else the checkpoint's.
    """
    from bincls.inference.evaluate import find_checkpoint, saved_threshold

    ckpt_path, run = find_checkpoint(checkpoint)
    model, ckpt = load_model(ckpt_path, "cpu")
    out = Path(out) if out else ckpt_path.with_suffix(".onnx")
    if out.suffix.lower() != ".onnx":
        raise BinclsError(f"The ONNX file name must end in .onnx, got {out}.")
    if not out.parent.is_dir():
        raise BinclsError(f"Folder {out.parent} does not exist: create it or choose another output file.")
    size = preprocess_of(ckpt).img_size
    example = (torch.randn(2, 3, size, size),)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.onnx")
    try:
        # The exporter prints its progress and warns about its own internals: keep the CLI output clean.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, example, tmp, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                opset_version=opset, dynamo=True, external_data=False,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            )  # fmt: skip
        os.replace(tmp, out)
    except BinclsError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; the user needs the gist
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise BinclsError(f"Exporting {ckpt_path} to ONNX failed: {first}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    thr = float(threshold) if threshold is not None else saved_threshold(run, ckpt)
    info = export_metadata(ckpt, thr, out.name)
    meta = out.with_name(out.name + ".json")
    meta.write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return Exported(out, meta, info)
