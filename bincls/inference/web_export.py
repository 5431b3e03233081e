"""`bincls export RUN --format web`: a folder (and its zip) with a page that runs the model in any browser.

The page runs the checked ONNX export (uint8 pixels in, bincls' exact resize, normalization, model,
calibration and out-of-distribution score inside) in onnxruntime-web's WebAssembly build, so its answers
are `bincls predict`'s once the browser has decoded the image as bincls does. Browsers refuse fetch() of
file:// URLs, so the page loads nothing but script files: the model and the WebAssembly binary travel
base64-encoded in .js files, and the runtime's Emscripten glue as a string it imports from a blob: URL.
Opened from disk or from any static host, it makes no request outside its folder.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bincls.errors import BinclsError
from bincls.inference.export import VERIFY_IMAGES, current_export, export_onnx
from bincls.inference.web_runtime import INTEGRITY, PACKAGE, VERSION, WebRuntime, web_runtime

FORMAT = "bincls-web/1"
ASSETS = Path(__file__).resolve().parent.parent / "web"
PAGE_FILES = ("index.html", "bincls.js", "page.js", "bincls.css")
MANIFEST = "bincls-web.json"
RUNTIME_FILES = ("ort.wasm.min.js", "LICENSE", "ThirdPartyNotices.txt", "package.json")


@dataclass
class WebExport:
    folder: Path
    zip: Path | None
    info: dict  # the export's JSON, as the page carries it (model.json)
    size_bytes: int  # of the folder's files


def export_web(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    threshold: float | None = None,
    verify_images: int = VERIFY_IMAGES,
    make_zip: bool = True,
) -> WebExport:
    """Write the web folder for CHECKPOINT (or a run folder's best.pt), and `<folder>.zip` beside it.

    The model is the run's current pixel-input export when it is still of this checkpoint and threshold,
    else a new one, checked against `bincls predict` before it is used (`export_onnx`; a failed check
    writes nothing). Default folder: RUN/web. An existing folder is replaced only when it is an earlier
    web export (or empty); nothing else is ever overwritten.
    """
    from bincls.inference.evaluate import find_checkpoint

    ckpt_path, run = find_checkpoint(checkpoint)
    folder = _target(out, ckpt_path, run)
    runtime = web_runtime()  # before the model: an offline machine learns it at once
    model, info = checked_model(ckpt_path, threshold, verify_images)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    try:
        manifest = write_web_folder(tmp, model, info, runtime)
        _swap(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    archive = None
    if make_zip:
        archive = folder.with_name(folder.name + ".zip")
        _write_atomic(archive, web_zip_bytes(folder))
    return WebExport(folder, archive, public_info(info), sum(f["bytes"] for f in manifest["files"].values()))


def checked_model(ckpt_path: Path, threshold: float | None, verify_images: int) -> tuple[bytes, dict]:
    """(ONNX bytes, export JSON) of a pixel-input export that passed its check, reused when current."""
    current = current_export(ckpt_path) if threshold is None else None
    # The page feeds one image's [H, W, 3] pixels: a `--batch` export at the default place will not do.
    if current is not None and current[1].get("input", {}).get("layout") == "HWC":
        return current[0].read_bytes(), current[1]
    with tempfile.TemporaryDirectory(prefix="bincls-web-") as tmp:
        done = export_onnx(
            ckpt_path, Path(tmp) / "model.onnx", threshold=threshold, verify_images=verify_images
        )
        return done.onnx.read_bytes(), done.info


def public_info(info: dict) -> dict:
    """The export JSON without the paths of this machine (a page may go on the web): file names only."""
    out = json.loads(json.dumps(info))
    prov = out.get("provenance") or {}
    if prov.get("checkpoint"):
        prov["checkpoint"] = Path(prov["checkpoint"]).name
    check = out.get("verification") or {}
    check["skipped"] = [_name_of_skipped(s) for s in check.get("skipped") or []]
    out["model_file"] = "model.js"
    return out


def _name_of_skipped(entry: str) -> str:
    path, sep, why = entry.partition(": ")
    return f"{Path(path).name}{sep}{why}"


def write_web_folder(folder: Path, model: bytes, info: dict, runtime: WebRuntime) -> dict:
    """The page, the model and the runtime in `folder` (created); returns the manifest it writes."""
    folder.mkdir(parents=True)
    (folder / "runtime").mkdir()
    shown = public_info(info)
    for name in PAGE_FILES:
        shutil.copyfile(ASSETS / name, folder / name)
    for name in RUNTIME_FILES:
        shutil.copyfile(runtime.file(name), folder / "runtime" / name)
    glue = runtime.file("ort-wasm-simd-threaded.mjs").read_text(encoding="utf-8")
    _js(
        folder / "runtime" / "ort-wasm-glue.js",
        "BINCLS_ORT_GLUE",
        json.dumps(glue),
        f"{PACKAGE} {VERSION} dist/ort-wasm-simd-threaded.mjs, as a string (imported from a blob: URL)",
    )
    wasm = runtime.file("ort-wasm-simd-threaded.wasm").read_bytes()
    _js(
        folder / "runtime" / "ort-wasm-binary.js",
        "BINCLS_ORT_WASM",
        _b64(wasm),
        f"{PACKAGE} {VERSION} dist/ort-wasm-simd-threaded.wasm, base64",
    )
    # ASCII only: a host that serves .js without a charset cannot garble the class names.
    payload = '{"info": ' + json.dumps(shown) + ', "onnx": ' + _b64(model) + "}"
    _js(folder / "model.js", "BINCLS_MODEL", payload, "the model (ONNX, base64) and its export JSON")
    (folder / "model.json").write_text(
        json.dumps(shown, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    files = {
        p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    manifest = {
        "format": FORMAT,
        "open": "index.html (from disk or any static host; no network needed)",
        "runtime": {"package": PACKAGE, "version": VERSION, "integrity": INTEGRITY, "license": "MIT"},
        "model": {k: shown.get(k) for k in ("model", "class_names", "threshold", "precision")},
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "files": files,
    }
    (folder / MANIFEST).write_text(
        json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest


def current_web_export(checkpoint: str | os.PathLike) -> Path | None:
    """The web folder at its default place (RUN/web) when it still carries the run's current export
    (same checkpoint bytes and threshold, check passed), else None: export again."""
    from bincls.inference.evaluate import find_checkpoint

    ckpt_path, run = find_checkpoint(checkpoint)
    folder = default_folder(ckpt_path, run)
    current = current_export(ckpt_path)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if current is None or manifest.get("model_sha256") != _sha256(current[0]):
        return None
    return folder


def web_zip_bytes(folder: str | os.PathLike) -> bytes:
    """The web folder as a zip (entries under the folder's name), for a download button or an email."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise BinclsError(f"{folder} is not a web export (no {MANIFEST}): export with --format web first.")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            z.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return buf.getvalue()


def default_folder(ckpt_path: Path, run) -> Path:
    """RUN/web for a run's checkpoint; NAME-web beside a lone checkpoint."""
    return run.path / "web" if run is not None else ckpt_path.with_name(f"{ckpt_path.stem}-web")


def _target(out, ckpt_path: Path, run) -> Path:
    folder = Path(out) if out else default_folder(ckpt_path, run)
    if not folder.parent.is_dir():
        raise BinclsError(
            f"Folder {folder.parent} does not exist: create it or choose another output folder."
        )
    if folder.exists() and not (
        folder.is_dir() and (not any(folder.iterdir()) or (folder / MANIFEST).is_file())
    ):
        raise BinclsError(
            f"{folder} exists and is not an earlier web export: choose a new or empty folder "
            "(bincls replaces only its own exports)."
        )
    archive = folder.with_name(folder.name + ".zip")
    if archive.exists() and not _is_web_zip(archive, folder.name):
        raise BinclsError(
            f"{archive} exists and is not a web export's zip: move it or choose another folder."
        )
    return folder


def _is_web_zip(path: Path, name: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return f"{name}/{MANIFEST}" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _swap(new: Path, folder: Path) -> None:
    """Put the finished folder in place; an earlier export there goes only once the new one is whole."""
    old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def _js(path: Path, name: str, value: str, what: str) -> None:
    path.write_text(f"/* {what} */\nwindow.{name} = {value};\n", encoding="utf-8")


def _b64(data: bytes) -> str:
    return '"' + base64.b64encode(data).decode("ascii") + '"'


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def summary(done: WebExport) -> str:
    """What the CLI prints: where the page is, how to use it, and the check its model passed."""
    from bincls.inference.parity import ParityReport

    check = done.info.get("verification")
    zipped = f"; zip {done.zip.stat().st_size / 2**20:.1f} MB: {done.zip}" if done.zip else ""
    return "\n".join([
        ParityReport.from_dict(check).summary() if check else "(the model's check is not recorded)",
        f"Web page: {done.folder / 'index.html'} ({done.size_bytes / 2**20:.1f} MB{zipped})",
        "  Open it in any browser, from disk or any static host: it runs offline, nothing is uploaded.",
    ])  # fmt: skip
