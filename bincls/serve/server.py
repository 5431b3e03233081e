"""`bincls serve RUN|CHECKPOINT|ONNX`: find or make the ONNX file, check the binding, run uvicorn.

A run or checkpoint is served from the export beside its checkpoint when that is of the same checkpoint
bytes and threshold; otherwise it is exported (and verified) once into the cache folder, keyed by the
checkpoint's bytes, so serving never writes beside a user's files and a retrained checkpoint is exported
again. A run is served in INT8 by default, with fp32 for the images near a threshold (`model_files`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shlex
import sys
from pathlib import Path

from bincls.errors import BinclsError

API_KEY_ENV = "BINCLS_API_KEY"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def api_key_for(host: str) -> str | None:
    """The API key from the environment; required when the server is reachable from other machines."""
    key = os.environ.get(API_KEY_ENV) or None
    if key is None and not is_loopback(host):
        raise BinclsError(
            f"Serving on {host} makes the model reachable from other machines: set {API_KEY_ENV} to a secret "
            f"(clients send it in the X-API-Key header), or serve on 127.0.0.1."
        )
    return key


PRECISIONS = ("auto", "int8", "fp32")


def model_files(source: str | os.PathLike, precision: str = "auto") -> tuple[Path, Path | None, float | None]:
    """The ONNX file to serve for SOURCE, the fp32 file for its borderline images (when INT8 is served),
    and the run's saved threshold (None: the file's own).

    An .onnx file is served as it is. For a run folder or checkpoint, the export beside the checkpoint
    (what `bincls export` and the Predict page write there) is served when it is current: of these
    checkpoint bytes and the run's threshold, and it passed its check (`current_export`). Otherwise the
    checkpoint is exported into the cache folder (checked against PyTorch, as `bincls export` does), once
    per checkpoint content: serving never writes beside a user's files.

    `precision`: "auto" serves INT8 with fp32 for the images near a threshold (`bincls predict`'s labels
    at about 70% of fp32's CPU time per image) when the run can be quantized and its INT8 file passes
    its check, else fp32, saying why; "int8" insists on INT8; "fp32" serves fp32 alone.
    """
    if precision not in PRECISIONS:
        raise BinclsError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
    path = Path(source)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise BinclsError(f"{path} does not exist.")
        if precision == "int8":
            raise BinclsError(f"--int8 serves a run or checkpoint; serve {path} as it is, without --int8.")
        return path, None, None
    from bincls.inference.evaluate import find_checkpoint, saved_threshold

    ckpt_path, run = find_checkpoint(path)
    has_saved = run is not None and run.config().get("threshold") is not None
    threshold = saved_threshold(run) if has_saved else None
    fp32 = _exported(ckpt_path, "fp32")
    if precision == "fp32":
        return fp32, None, threshold
    try:
        return _exported(ckpt_path, "int8"), fp32, threshold
    except BinclsError as exc:
        if precision == "int8":
            raise
        print(f"Serving fp32: no INT8 file for this checkpoint ({str(exc).splitlines()[0]})", file=sys.stderr)
        return fp32, None, threshold


def _exported(ckpt_path: Path, precision: str) -> Path:
    """The checkpoint's current export beside it, else its export in the cache folder (made once)."""
    from bincls.inference.export import FORMAT, current_export, export_onnx
    from bincls.paths import cache_dir

    beside = current_export(ckpt_path, int8=precision == "int8")
    if beside is not None:
        print(f"Using {beside[0]} (exported from this checkpoint, checked)", file=sys.stderr)
        return beside[0]
    digest = hashlib.sha256(FORMAT.encode() + ckpt_path.read_bytes()).hexdigest()[:20]
    target = cache_dir() / "serve" / f"{digest}{'.int8' if precision == 'int8' else ''}.onnx"
    if not (target.is_file() and target.with_name(target.name + ".json").is_file()):
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"Exporting {ckpt_path} to {precision} ONNX (once, checked)", file=sys.stderr)
        done = export_onnx(ckpt_path, out=target, int8=precision == "int8")
        print(done.report.summary(), file=sys.stderr)
    return target


def serve_command(
    source: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, precision: str = "auto"
) -> str:
    """The shell command that serves SOURCE (a run folder, checkpoint or ONNX file), for a page to show."""
    parts = ["python", "-m", "bincls", "serve", os.fspath(source)]
    if host != "127.0.0.1":
        parts += ["--host", host]
    if port != 8000:
        parts += ["--port", str(port)]
    if precision != "auto":
        parts.append(f"--{precision}")
    line = " ".join(shlex.quote(p) for p in parts)
    return line if is_loopback(host) else f"{API_KEY_ENV}=choose-a-secret {line}"


def serve(
    source: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, *, precision: str = "auto",
    threshold: float | None = None, limits=None, slots: int | None = None, access_log: bool = True,
) -> None:  # fmt: skip
    """Serve SOURCE until interrupted (Ctrl+C, SIGTERM)."""
    import uvicorn

    from bincls.inference.onnx_predict import OnnxPredictor
    from bincls.serve.app import Limits, create_app

    key = api_key_for(host)  # before any slow export: a refused binding should fail at once
    onnx_path, exact, saved = model_files(source, precision)
    import torch

    torch.set_num_threads(1)  # the resize runs in each scoring thread, one per core, as onnxruntime does
    model = OnnxPredictor(onnx_path, threshold=threshold if threshold is not None else saved, exact=exact)
    model.fast_preprocessing()
    slots = slots or os.cpu_count() or 1
    app = create_app(model, limits or Limits(), api_key=key, slots=slots)
    a, b = model.class_names
    precision = model.info.get("precision")
    if model.exact is not None:
        precision += f"; fp32 for P within {model.borderline:.3f} of the threshold"
    print(f"Serving {model.info.get('model')} ({a} / {b}, threshold {model.threshold:g}, {precision}) "
          f"from {onnx_path}", file=sys.stderr)  # fmt: skip
    print(f"  http://{host}:{port}/predict   docs: http://{host}:{port}/docs"
          + ("   API key required (X-API-Key)" if key else ""), file=sys.stderr)  # fmt: skip
    level = "info" if access_log else "warning"  # uvicorn logs each request at info
    uvicorn.run(app, host=host, port=port, log_level=level, access_log=access_log)
