"""onnxruntime-web, the runtime the web export's page runs the model in: one pinned version from the npm
registry, checked against its published sha512 before a byte of it is unpacked, kept in bincls' cache.

Why fetched once rather than committed: its WebAssembly binary is 15 MB (the package 35 MB), which every
clone and wheel of bincls would carry for the few who export to the web, and an upgrade would be a binary
diff nobody can review; the pinned version and integrity below are reviewable, and the same check guards
every machine. Why npm's tarball: it is what the onnxruntime project publishes for browsers, its
`integrity` is the registry's own record of it. `npm pack` fetches it where npm is installed (the
ordinary client: it honours the user's registry, proxy and credentials); Python's urllib does where it is
not (most bincls users have no Node.js). An offline machine can be given the tarball
(`BINCLS_ORT_WEB_TARBALL`); its hash is checked all the same.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bincls.errors import BinclsError
from bincls.paths import cache_dir

PACKAGE = "onnxruntime-web"
VERSION = "1.31.1"
# The registry's `dist.integrity` of that version (`npm view onnxruntime-web@1.31.1 dist.integrity`).
INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
# What the page needs of the package: the WebAssembly-only build (no WebGL/WebGPU code), its Emscripten
# glue and binary (single-threaded use; the threaded build runs with one thread), and the package's
# manifest (version, licence field).
FILES = (
    "dist/ort.wasm.min.js",
    "dist/ort-wasm-simd-threaded.mjs",
    "dist/ort-wasm-simd-threaded.wasm",
    "package.json",
)
TARBALL_ENV = "BINCLS_ORT_WEB_TARBALL"
DEFAULT_REGISTRY = "https://registry.npmjs.org/"
MAX_TARBALL_BYTES = 200 * 2**20
MANIFEST = "verified.json"
# The npm package has no licence file (its package.json says MIT; its README points to the repository's).
# The onnxruntime Python package, which bincls depends on, ships that repository's licence and notices.
LICENSE_FILES = ("LICENSE", "ThirdPartyNotices.txt")


@dataclass(frozen=True)
class WebRuntime:
    """The verified runtime files, in a folder of bincls' cache."""

    folder: Path
    version: str = VERSION

    def file(self, name: str) -> Path:
        """A file of the package by its name (`ort.wasm.min.js`, `LICENSE`, ...)."""
        return self.folder / Path(name).name


def web_runtime() -> WebRuntime:
    """The runtime from the cache, fetched and verified first when it is not there (or not intact)."""
    folder = cache_dir() / "web-runtime" / f"{PACKAGE}-{VERSION}"
    if not intact(folder):
        data, source = fetch_tarball()
        install(data, source, folder)
    return WebRuntime(folder)


def check_integrity(data: bytes, integrity: str, source: str) -> None:
    """Refuse bytes whose hash is not the Subresource-Integrity string npm records (`sha512-<base64>`)."""
    algorithm, _, expected = integrity.partition("-")
    if algorithm not in ("sha512", "sha384", "sha256"):
        raise BinclsError(f"Unknown integrity algorithm {algorithm!r} for {PACKAGE}.")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if not hmac.compare_digest(actual, expected):
        raise BinclsError(
            f"{source} is not {PACKAGE} {VERSION} as the npm registry published it: its {algorithm} is "
            f"{actual[:16]}..., expected {expected[:16]}... . Nothing was unpacked. Delete it and export "
            "again (a proxy or mirror that changes packages is the usual cause)."
        )


def install(data: bytes, source: str, folder: Path) -> None:
    """Check the tarball, unpack the files the page needs and the licence into `folder`, atomically."""
    check_integrity(data, INTEGRITY, source)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for name in FILES:
                member = tar.getmember(f"package/{name}")
                if not member.isfile():
                    raise BinclsError(f"{source}: package/{name} is not a regular file.")
                (tmp / Path(name).name).write_bytes(tar.extractfile(member).read())
        _copy_license(tmp)
        manifest = {
            "package": PACKAGE,
            "version": VERSION,
            "integrity": INTEGRITY,
            "source": source,
            "sha256": {p.name: _sha256(p) for p in sorted(tmp.iterdir())},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if folder.exists():  # a damaged copy: replaced whole
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except (KeyError, tarfile.TarError) as exc:
        raise BinclsError(f"{source} does not hold {PACKAGE}'s files ({exc}).") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def intact(folder: Path) -> bool:
    """The folder holds this pinned version, every file as it was when its tarball was verified."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        hashes = manifest["sha256"]
        needed = {Path(n).name for n in FILES} | set(LICENSE_FILES)
        return (
            manifest.get("integrity") == INTEGRITY
            and needed <= hashes.keys()
            and all(_sha256(folder / name) == digest for name, digest in hashes.items())
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def fetch_tarball() -> tuple[bytes, str]:
    """(the tarball's bytes, where they came from): the file `BINCLS_ORT_WEB_TARBALL` names, else npm pack,
    else a download from the registry; one `BinclsError` naming every way tried when all fail."""
    given = os.environ.get(TARBALL_ENV)
    if given:
        try:
            return Path(given).read_bytes(), given
        except OSError as exc:
            raise BinclsError(f"{TARBALL_ENV}={given}: cannot read it ({exc.strerror or exc}).") from None
    failures = []
    npm = shutil.which("npm")
    if npm:
        try:
            return _npm_pack(npm), f"npm pack {PACKAGE}@{VERSION}"
        except (OSError, subprocess.SubprocessError) as exc:
            failures.append(f"npm pack: {_first_line(exc)}")
    url = tarball_url()
    try:
        return _download(url), url
    except (OSError, ValueError) as exc:
        failures.append(f"{url}: {_first_line(exc)}")
    raise BinclsError(
        f"The web page needs {PACKAGE} {VERSION} (the browser runtime, a 35 MB download once, kept in "
        f"{cache_dir()}) and it could not be fetched: " + "; ".join(failures) + ". Connect to the internet "
        f"and export again; or, on a machine that has it, run `npm pack {PACKAGE}@{VERSION}` and point "
        f"{TARBALL_ENV} at the .tgz (its sha512 is checked)."
    )


def tarball_url() -> str:
    """The tarball at the registry npm would use (`npm_config_registry`, as npm reads it), else npm's."""
    registry = (
        os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY") or DEFAULT_REGISTRY
    )
    return f"{registry.rstrip('/')}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"


def _npm_pack(npm: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp,
        )
        packed = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or len(packed) != 1:
            raise subprocess.SubprocessError(
                (done.stderr or done.stdout or f"exit {done.returncode}").strip()
            )
        return packed[0].read_bytes()


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - a registry URL, https or file
        data = response.read(MAX_TARBALL_BYTES + 1)
    if len(data) > MAX_TARBALL_BYTES:
        raise ValueError(f"more than {MAX_TARBALL_BYTES // 2**20} MB")
    return data


def _copy_license(folder: Path) -> None:
    import onnxruntime

    here = Path(onnxruntime.__file__).parent
    for name in LICENSE_FILES:
        try:
            shutil.copyfile(here / name, folder / name)
        except OSError as exc:
            raise BinclsError(f"onnxruntime's {name} is missing ({exc}): reinstall onnxruntime.") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
