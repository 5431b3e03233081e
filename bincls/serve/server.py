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

from bincls.checks import is_int
from bincls.errors import BinclsError

API_KEY_ENV = "BINCLS_API_KEY"
MAX_SLOTS = 64


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
    (what `bincls export` and the Predict page write there) is served when it is current: its JSON of this
    very file, of these checkpoint bytes and the run's threshold, and it passed its check
    (`current_export`). Otherwise the checkpoint is exported into the cache folder (checked against
    PyTorch, as `bincls export` does), once per checkpoint content: serving never writes beside a user's
    files.

    `precision`: "auto" serves INT8 with fp32 for the images near a threshold when the run can be
    quantized, its INT8 file passes its check, measured faster than fp32 in it, and would leave most
    probabilities to INT8 (`int8_refusal`); else fp32, saying why. "int8" insists on INT8; "fp32"
    serves fp32 alone.
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
    from bincls.inference.onnx_predict import int8_refusal

    ckpt_path, run = find_checkpoint(path)
    has_saved = run is not None and run.config().get("threshold") is not None
    threshold = saved_threshold(run) if has_saved else None
    fp32 = _exported(ckpt_path, "fp32")
    if precision == "fp32":
        return fp32, None, threshold
    try:
        int8 = _exported(ckpt_path, "int8")
    except BinclsError as exc:
        if precision == "int8":
            raise
        print(f"Serving fp32: no INT8 file for this checkpoint ({str(exc).splitlines()[0]})", file=sys.stderr)
        return fp32, None, threshold
    from bincls.inference.export import sound_export

    info = sound_export(int8)  # current or just made: sound
    why_not = int8_refusal(info, info["threshold"] if threshold is None else threshold) if info else None
    if precision == "auto" and why_not:
        print(f"Serving fp32: {why_not} (--int8 serves INT8 all the same).", file=sys.stderr)
        return fp32, None, threshold
    return int8, fp32, threshold


def _exported(ckpt_path: Path, precision: str) -> Path:
    """The checkpoint's current export beside it, else its export in the cache folder (made once, and
    again when the cached file or its JSON is damaged or no longer names each other)."""
    from bincls.inference.export import FORMAT, current_export, export_onnx, sound_export
    from bincls.paths import cache_dir

    beside = current_export(ckpt_path, int8=precision == "int8")
    if beside is not None:
        print(f"Using {beside[0]} (exported from this checkpoint, checked)", file=sys.stderr)
        return beside[0]
    try:
        data = ckpt_path.read_bytes()  # read once: the cache key and the export are of the same bytes
    except OSError as exc:
        raise BinclsError(f"Cannot read {ckpt_path}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(FORMAT.encode() + data).hexdigest()[:20]
    target = cache_dir() / "serve" / f"{digest}{'.int8' if precision == 'int8' else ''}.onnx"
    if sound_export(target) is None:
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"Exporting {ckpt_path} to {precision} ONNX (once, checked)", file=sys.stderr)
        done = export_onnx(ckpt_path, out=target, int8=precision == "int8", checkpoint_bytes=data)
        print(done.report.summary(), file=sys.stderr)
    return target


def serve_command(
    source: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, precision: str = "auto"
) -> str:
    """The shell command that serves SOURCE (a run folder, checkpoint or ONNX file), for a page to show.
    Bound to every address, it answers any host name (the API key it needs guards it); name the hosts
    with --allowed-host instead of '*' to answer only those."""
    parts = ["python", "-m", "bincls", "serve", os.fspath(source)]
    if host != "127.0.0.1":
        parts += ["--host", host]
    if _every_address(host):
        parts += ["--allowed-host", "*"]
    if port != 8000:
        parts += ["--port", str(port)]
    if precision != "auto":
        parts.append(f"--{precision}")
    line = " ".join(shlex.quote(p) for p in parts)
    return line if is_loopback(host) else f"{API_KEY_ENV}=choose-a-secret {line}"


def _every_address(host: str) -> bool:
    bare = host.strip("[]")
    try:
        return bare in ("", "*") or ipaddress.ip_address(bare).is_unspecified
    except ValueError:
        return False


def check_server_options(port: int, slots: int | None) -> None:
    if not (is_int(port) and 1 <= port <= 65535):
        raise BinclsError(f"--port must be a whole number from 1 to 65535, got {port!r}.")
    if slots is not None and not (is_int(slots) and 1 <= slots <= MAX_SLOTS):
        raise BinclsError(f"--threads must be a whole number from 1 to {MAX_SLOTS}, got {slots!r}.")


def hosts_for(host: str, allowed: list[str] | None) -> list[str]:
    """The Host names the server answers: the loopback names, the address it is bound to, and `allowed`
    (`--allowed-host`). Bound to every address (0.0.0.0), the names clients use must be given: a page
    that points another name at this machine (DNS rebinding) is not answered."""
    from bincls.serve.app import LOOPBACK_NAMES, allowed_host_patterns

    bare = host.strip("[]")
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        address = None
    if _every_address(host):
        if not allowed:
            raise BinclsError(f"--host {host} answers on every address of this machine: name the host names "
                              "clients will use with --allowed-host NAME (repeat it for each; '*' for any).")
        own = []
    else:
        own = [f"[{bare}]" if address is not None and address.version == 6 else bare]
    names = allowed_host_patterns([*LOOPBACK_NAMES, *own, *(allowed or [])])
    return list(dict.fromkeys(names))


def serve(
    source: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, *, precision: str = "auto",
    threshold: float | None = None, limits=None, slots: int | None = None, access_log: bool = True,
    allowed_hosts: list[str] | None = None, collect: str | os.PathLike | None = None,
    collect_max: int = 1000, collect_margin: float = 0.1,
) -> None:  # fmt: skip
    """Serve SOURCE until interrupted (Ctrl+C, SIGTERM). `collect`: keep the images near the threshold
    or unlike the training images in that folder (`bincls.serve.collect`)."""
    import uvicorn

    from bincls.inference.onnx_predict import OnnxPredictor
    from bincls.serve.app import Limits, create_app
    from bincls.serve.collect import Collector, check_options

    check_server_options(port, slots)  # before any slow export: a refused setting fails at once
    key = api_key_for(host)
    hosts = hosts_for(host, allowed_hosts)
    limits = limits or Limits()
    if collect is not None:
        check_options(collect_max, collect_margin)
    onnx_path, exact, saved = model_files(source, precision)
    import torch

    torch.set_num_threads(1)  # the resize runs in each scoring thread, one per core, as onnxruntime does
    model = OnnxPredictor(onnx_path, threshold=threshold if threshold is not None else saved, exact=exact)
    model.fast_preprocessing()
    slots = slots or os.cpu_count() or 1
    collector = Collector(collect, collect_max, collect_margin, model.sha256) if collect is not None else None
    app = create_app(model, limits, api_key=key, slots=slots, allowed_hosts=hosts, collector=collector)
    _announce(model, onnx_path, host, port, key, hosts, collector)
    level = "info" if access_log else "warning"  # uvicorn logs each request at info
    try:
        uvicorn.run(app, host=host, port=port, log_level=level, access_log=access_log)
    finally:
        if collector is not None:
            collector.close()


def _announce(model, onnx_path: Path, host: str, port: int, key, hosts: list[str], collector) -> None:
    a, b = model.class_names
    precision = model.info.get("precision")
    if model.exact is not None:
        precision += f"; fp32 for P within {model.borderline:.3f} of the threshold"
    print(f"Serving {model.info.get('model')} ({a} / {b}, threshold {model.threshold:g}, {precision}) "
          f"from {onnx_path}", file=sys.stderr)  # fmt: skip
    docs = "   API key required (X-API-Key); docs pages off" if key else f"   docs: http://{host}:{port}/docs"
    print(f"  http://{host}:{port}/predict{docs}", file=sys.stderr)
    print(f"  answers requests addressed to: {', '.join(hosts)}", file=sys.stderr)
    if collector is not None:
        print(f"  keeping images within {collector.margin:g} of the threshold or unlike the training images "
              f"in {collector.folder} (at most {collector.max_items:,}, oldest first out)", file=sys.stderr)
