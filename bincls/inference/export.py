"""Export a checkpoint to ONNX that gives `bincls predict`'s answer, checked on real images before it is kept.

The default file takes what any program has, uint8 RGB pixels of any size, and does the resize and
normalization inside, bit for bit as training did (`onnx_preprocess`); then the same `Scorer` every
consumer uses, so calibration (temperature), the out-of-distribution score and test-time augmentation
travel with it. A JSON beside the file (also stored in the file's metadata) gives class names,
threshold, preprocessing and provenance, and the parity report of the check that let it be written.

TorchScript is not offered: torch.jit is in maintenance mode (torch.export is its successor, and it is
what the ONNX exporter below builds on), and whoever has PyTorch can load the .pt checkpoint with
bincls itself. ONNX is the format that runs without PyTorch (onnxruntime, Triton, OpenCV, browsers).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

import bincls
from bincls.errors import BinclsError
from bincls.inference.export_images import (  # noqa: F401 - the others: also read from here
    CALIBRATION_MAX_PIXELS,
    calibration_tensors,
    checked_images,
    verification_images,
)
from bincls.inference.export_schema import EXPORT_FORMAT, export_problems
from bincls.inference.onnx_predict import NORMALIZED, sha256_of
from bincls.inference.onnx_preprocess import preprocess_model
from bincls.inference.parity import ParityReport, check_parity
from bincls.models.checkpoint import model_config_of

FORMAT = EXPORT_FORMAT
INPUT_NAME = "image"
OUTPUT_NAMES = ["probabilities", "logit", "ood_score"]
INPUT_KINDS = ("pixels", "tensor")
VERIFY_IMAGES = 200  # enough for a stable accuracy figure; the export takes seconds, not minutes
# torch.export is not thread-safe: two exports at once in one process (two tabs of the app) failed with a
# garbled error. One export at a time; the next waits its turn.
_EXPORTING = threading.Lock()


@dataclass
class Exported:
    onnx: Path
    metadata: Path
    info: dict  # what the JSON beside the file holds
    report: ParityReport


class _ScorerOutputs(nn.Module):
    """The Scorer with the outputs of the ONNX file: probabilities [N, 2], logit [N], ood_score [N]."""

    def __init__(self, scorer: nn.Module):
        super().__init__()
        self.scorer = scorer

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logit, p1, ood = self.scorer(x)
        return torch.stack([1 - p1, p1], dim=1), logit.float(), ood


def export_scorer(
    scorer: nn.Module, img_size: int, input_name: str, opset: int | None = None
) -> onnx.ModelProto:
    """The Scorer as ONNX: normalized float [N, 3, S, S] -> probabilities, logit, ood_score (N dynamic)."""
    example = (torch.randn(2, 3, img_size, img_size),)
    try:
        # The exporter warns about its own internals: keep the CLI output clean. verbose=False keeps its
        # progress off stdout (redirecting sys.stdout instead is not thread-safe: once it stayed redirected).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                _ScorerOutputs(scorer).eval(), example, input_names=[input_name], output_names=OUTPUT_NAMES,
                opset_version=opset, dynamo=True, verbose=False,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            )  # fmt: skip
        return program.model_proto
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; the user needs the gist
        first = _plain_text((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:300]
        raise BinclsError(f"Exporting the model to ONNX failed: {first}") from exc


def _plain_text(text: str) -> str:
    """Without terminal colour codes (the exporter's messages carry them)."""
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


@torch.no_grad()
def head_modules(model: nn.Module, img_size: int) -> list[str]:
    """The modules that turn the model's pooled features into its logit (names inside the model), found
    by running them: what `forward_head` calls, else the last module `forward` calls."""
    names = {m: n for n, m in model.named_modules() if n}
    ran: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, *_: ran.append(names[mod])) for m in names]
    try:
        x = torch.zeros(1, 3, img_size, img_size)
        if hasattr(model, "forward_head"):
            features = model.forward_features(x)
            ran.clear()
            model.forward_head(features)
            return sorted(set(ran))
        model(x)
        leaves = [n for n in ran if not any(True for _ in model.get_submodule(n).children())]
        return leaves[-1:]
    finally:
        for hook in hooks:
            hook.remove()


def with_pixel_input(scorer: onnx.ModelProto, predictor, batched: bool) -> onnx.ModelProto:
    """uint8 pixels -> (exact resize and normalization) -> the Scorer graph, as one ONNX model."""
    opset = next(o.version for o in scorer.opset_import if o.domain in ("", "ai.onnx"))
    pre = preprocess_model(predictor.preprocess, opset, scorer.ir_version, batched=batched,
                           input_name=INPUT_NAME, output_name=scorer.graph.input[0].name)  # fmt: skip
    for extra in scorer.opset_import:  # the Scorer may use more domains than the default one
        if extra.domain not in ("", "ai.onnx"):
            pre.opset_import.append(extra)
    return onnx.compose.merge_models(pre, scorer, io_map=[(scorer.graph.input[0].name,) * 2])


def default_output(ckpt_path: Path, kind: str = "pixels", int8: bool = False) -> Path:
    """best.pt -> best.onnx; best.int8.onnx; best.tensor.onnx for the float-tensor input."""
    parts = [ckpt_path.stem] + (["tensor"] if kind == "tensor" else []) + (["int8"] if int8 else [])
    return ckpt_path.with_name(".".join(parts) + ".onnx")


def _target(out, ckpt_path: Path, kind: str, int8: bool, verify_images: int) -> Path:
    """The file to write, once the settings are known to be usable."""
    if kind not in INPUT_KINDS:
        raise BinclsError(f"The export input must be one of {', '.join(INPUT_KINDS)}; got {kind!r}.")
    if verify_images < 1:
        raise BinclsError(f"--verify-images must be at least 1 (exports are checked), got {verify_images}.")
    out = Path(out) if out else default_output(ckpt_path, kind, int8)
    if out.suffix.lower() != ".onnx":
        raise BinclsError(f"The ONNX file name must end in .onnx, got {out}.")
    if not out.parent.is_dir():
        raise BinclsError(f"Folder {out.parent} does not exist: create it or choose another output file.")
    return out


def export_onnx(
    checkpoint: str | os.PathLike, out: str | os.PathLike | None = None, threshold: float | None = None,
    opset: int | None = None, *, input: str = "pixels", batched: bool = False, int8: bool = False,
    verify_images: int = VERIFY_IMAGES, checkpoint_bytes: bytes | None = None,
) -> Exported:  # fmt: skip
    """Write CHECKPOINT (or a run folder's best.pt) as ONNX, checked against PyTorch before it is kept.

    `input="pixels"` (default): uint8 RGB [H, W, 3] of any size (`batched`: [N, H, W, 3], one size per
    batch), preprocessing inside; `input="tensor"`: the normalized float [N, 3, S, S]. `int8`: static
    INT8 quantization calibrated on the run's training images. The file (default beside the checkpoint,
    best.onnx) and its JSON are written only when the parity check on the run's test and validation
    images passes; otherwise `BinclsError` says by how much it failed. The threshold is the one given,
    else the run's saved one, else the checkpoint's.

    The checkpoint is read once and loaded from those bytes, and their sha256 is what the JSON records
    (`checkpoint_bytes`: bytes the caller already read and hashed): a best.pt replaced meanwhile (training
    saves a better one) is never recorded as the one exported. The JSON also records the ONNX file's own
    sha256 (`model_sha256`). One export runs at a time per process (torch.export is not thread-safe); a
    run folder deleted meanwhile, a full disk or too little memory is a `BinclsError` saying so.
    """
    from bincls.inference.evaluate import find_checkpoint

    ckpt_path, run = find_checkpoint(checkpoint)
    out = _target(out, ckpt_path, input, int8, verify_images)
    if int8 and (run is None or not run.split_path.exists()):
        raise BinclsError(
            f"INT8 needs the training images to calibrate on, and {ckpt_path} is not in a run folder with "
            "a split.csv: export the run's checkpoint (runs/RUN_ID/best.pt)."
        )
    with _EXPORTING:
        try:
            data = checkpoint_bytes if checkpoint_bytes is not None else ckpt_path.read_bytes()
            return _export(ckpt_path, data, run, out, threshold, opset, input, batched, int8, verify_images)
        except FileNotFoundError as exc:
            gone = exc.filename or ckpt_path
            raise BinclsError(f"{gone} went away during the export (was the run deleted or moved?): nothing "
                              "was written.") from None  # fmt: skip
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise BinclsError(f"The export of {ckpt_path} stopped: {exc.strerror or exc}{where}.") from None
        except MemoryError:
            raise BinclsError(f"Not enough memory to export {ckpt_path}: close other programs or export "
                              "on a larger machine.") from None  # fmt: skip


def _export(ckpt_path, data, run, out, threshold, opset, input, batched, int8, verify_images) -> Exported:
    from bincls.inference.predict import Predictor

    predictor = Predictor(ckpt_path, device="cpu", threshold=threshold, checkpoint_bytes=data)
    files, labels, source, passed_over = checked_images(run, verify_images)
    input_name = INPUT_NAME if input == "tensor" else NORMALIZED
    scorer = export_scorer(predictor.scorer, predictor.preprocess.img_size, input_name, opset)
    fp32 = scorer if input == "tensor" else with_pixel_input(scorer, predictor, batched)
    model = fp32
    if int8:
        from bincls.inference.quantize import quantize_scorer

        heads = head_modules(predictor.model, predictor.preprocess.img_size)
        quantized = quantize_scorer(scorer, calibration_tensors(run, predictor), heads)
        model = quantized if input == "tensor" else with_pixel_input(quantized, predictor, batched)
    info = export_metadata(predictor.ckpt, predictor.threshold, out.name, input=input, batched=batched,
                           precision="int8" if int8 else "fp32", scorer=predictor.scorer,
                           checkpoint=ckpt_path, run_id=run.id if run else None,
                           checkpoint_sha256=hashlib.sha256(data).hexdigest())  # fmt: skip
    onnx.helper.set_model_props(model, {"bincls": json.dumps(info, ensure_ascii=False)})
    serialized = model.SerializeToString()
    report = check_parity(serialized, predictor, files, labels, source, kind=input, batched=batched,
                          precision=info["precision"], onnx_file=out.name,
                          reference_model=fp32.SerializeToString() if int8 else None)  # fmt: skip
    report.skipped += passed_over
    info["verification"] = report.to_dict()
    info["model_sha256"] = sha256_of(serialized)
    if not report.passed:
        raise BinclsError(f"{out} was not written: the exported model does not give PyTorch's answers.\n"
                          + report.summary())  # fmt: skip
    meta = out.with_name(out.name + ".json")
    _write_atomic(out, serialized)
    _write_atomic(meta, (json.dumps(info, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    return Exported(out, meta, info, report)


def current_export(checkpoint: str | os.PathLike, int8: bool = False) -> tuple[Path, dict] | None:
    """The export of CHECKPOINT (or a run folder's best.pt) at its default place, with its JSON, when it
    still gives what `bincls predict` gives: its JSON well-formed and of this very ONNX file (its sha256),
    made from these checkpoint bytes, with the run's threshold as it is now, and passed its check. None
    when there is none, it is stale (retrained, or another threshold saved since) or the file beside the
    JSON is not the one it describes: export again."""
    from bincls.inference.evaluate import find_checkpoint, saved_threshold

    ckpt_path, run = find_checkpoint(checkpoint)
    out = default_output(ckpt_path, "pixels", int8)
    info = sound_export(out)
    if info is None:
        return None
    try:
        # The threshold the Predictor would use now: the run's saved one, else (as at export) the
        # checkpoint's.
        threshold = saved_threshold(run, {"threshold": info.get("threshold")})
        same_model = info["provenance"].get("checkpoint_sha256") == _sha256(ckpt_path)
    except (OSError, BinclsError):  # the run or its checkpoint went away meanwhile
        return None
    return (out, info) if same_model and info.get("threshold") == threshold else None


def sound_export(onnx_path: Path) -> dict | None:
    """The JSON beside `onnx_path` when it is well-formed, passed its check and names the file's own
    bytes (`model_sha256`), else None."""
    try:
        info = json.loads(onnx_path.with_name(onnx_path.name + ".json").read_text(encoding="utf-8"))
        if export_problems(info) or info.get("model_sha256") is None:
            return None
        if not isinstance(info.get("provenance"), dict) or info["verification"].get("passed") is not True:
            return None
        return info if info["model_sha256"] == _sha256(onnx_path) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise BinclsError(f"Cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def export_metadata(
    ckpt: dict, threshold: float, onnx_name: str, *, input: str = "pixels", batched: bool = False,
    precision: str = "fp32", scorer: nn.Module | None = None, checkpoint: Path | None = None,
    run_id: str | None = None, checkpoint_sha256: str | None = None,
) -> dict:  # fmt: skip
    """What a program needs to use the exported model without bincls. `checkpoint_sha256`: of the bytes
    the model was loaded from (else the checkpoint file is hashed now)."""
    cfg = model_config_of(ckpt)
    names = list(ckpt["class_names"])
    # What the graph holds: the Scorer's, which it builds from these same checkpoint keys.
    temperature = float(getattr(scorer, "temperature", ckpt.get("temperature", 1.0)))
    bias = float(getattr(scorer, "bias", ckpt.get("logit_bias", 0.0)))
    tta = bool(getattr(scorer, "tta", ckpt.get("tta", False)))
    ood_threshold = scorer.ood_threshold if scorer is not None else (ckpt.get("ood") or {}).get("threshold")
    calibrated = temperature != 1.0 or bias != 0.0
    return {
        "format": FORMAT,
        "model_file": onnx_name,
        "model": cfg.name,
        "class_names": names,
        "threshold": threshold,
        "precision": precision,
        "input": _input_info(cfg, input, batched),
        "outputs": {
            "probabilities": f"[N, 2]: P({names[0]}), P({names[1]})"
                             + (f"; calibrated: sigmoid(logit / {temperature:.4g} + {bias:.4g})"
                                if calibrated else ""),
            "logit": f"[N]: the model's logit for {names[1]}, before calibration"
                     + (" (averaged with the mirror image's)" if tta else ""),
            "ood_score": "[N]: higher is less like the training images"
                         + (f"; flag above {ood_threshold:g}" if ood_threshold is not None else
                            "; always 0 (this model has no out-of-distribution detector)"),
        },  # fmt: skip
        "decision": f"{names[1]} when probabilities[:, 1] >= threshold, else {names[0]}",
        "temperature": temperature,
        "logit_bias": bias,
        "ood_threshold": ood_threshold,
        "tta": tta,
        "provenance": _provenance(ckpt, checkpoint, run_id, checkpoint_sha256),
    }


def _input_info(cfg, kind: str, batched: bool) -> dict:
    size = cfg.img_size
    preprocessing = {
        "img_size": size,
        "resize": f"squash the whole image to {size} x {size} (no crop): torchvision Resize, antialiased, "
                  "on uint8 (PIL's fixed-point algorithm, rounded to uint8)",
        "scale": "pixel values / 255, to [0, 1]",
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "normalize": "(x - mean) / std, per channel",
    }  # fmt: skip
    if kind == "tensor":
        return {"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "shape": ["batch", 3, size, size],
                "color": "RGB", "preprocessing": {**preprocessing, "inside_graph": False}}  # fmt: skip
    return {
        "name": INPUT_NAME, "layout": "NHWC" if batched else "HWC", "dtype": "uint8", "color": "RGB",
        "shape": ["batch", "height", "width", 3] if batched else ["height", "width", 3],
        "decode": "decode the whole file (no reduced-size JPEG decoding), apply its EXIF orientation "
                  "(PIL: ImageOps.exif_transpose), composite transparency on white, convert to RGB",
        "preprocessing": {**preprocessing, "inside_graph": True},
    }  # fmt: skip


def _provenance(ckpt: dict, checkpoint: Path | None, run_id: str | None, digest: str | None) -> dict:
    import onnxruntime

    out = {
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run_id": run_id,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "checkpoint_sha256": digest or (_sha256(checkpoint) if checkpoint else None),
        "epoch": ckpt.get("epoch"),
        "trained_with": ckpt.get("versions", {}),
        "exported_with": {"bincls": bincls.__version__, "torch": str(torch.__version__),
                          "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},  # fmt: skip
    }
    metrics = ckpt.get("metrics") or {}
    out["val_accuracy"] = metrics.get("val_accuracy")
    return out

