"""The vendored onnxruntime-web: one pinned version, its registry hash checked before anything is unpacked."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from bincls.errors import BinclsError
from bincls.inference import web_runtime as wr
from bincls.paths import cache_dir


def fake_tarball(content: bytes = b"wasm") -> bytes:
    """A package tarball with the files the page takes, each holding a few bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in wr.FILES:
            data = content + name.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def runtime_folder() -> Path:
    return cache_dir() / "web-runtime" / f"{wr.PACKAGE}-{wr.VERSION}"


def test_a_tarball_that_is_not_the_published_one_is_refused_and_nothing_unpacked(tmp_path, monkeypatch):
    tarball = tmp_path / "onnxruntime-web-1.31.1.tgz"
    tarball.write_bytes(fake_tarball())  # right names, wrong bytes: what a tampering mirror would serve
    monkeypatch.setenv(wr.TARBALL_ENV, str(tarball))
    with pytest.raises(BinclsError, match="is not onnxruntime-web 1.31.1 as the npm registry published it"):
        wr.web_runtime()
    parent = cache_dir() / "web-runtime"
    assert not parent.exists() or not any(parent.iterdir())  # nothing unpacked, not even half


def test_the_pinned_version_is_checked_against_the_registrys_sri_string():
    data = b"some bytes"
    wr.check_integrity(data, integrity_of(data), "x")
    with pytest.raises(BinclsError, match="Nothing was unpacked"):
        wr.check_integrity(data + b"!", integrity_of(data), "x")
    assert wr.INTEGRITY.startswith("sha512-") and len(base64.b64decode(wr.INTEGRITY[7:])) == 64


def test_a_verified_tarball_is_unpacked_with_the_licence_and_rechecked_on_every_use(tmp_path, monkeypatch):
    data = fake_tarball()
    tarball = tmp_path / "pkg.tgz"
    tarball.write_bytes(data)
    monkeypatch.setattr(wr, "INTEGRITY", integrity_of(data))
    monkeypatch.setenv(wr.TARBALL_ENV, str(tarball))
    runtime = wr.web_runtime()
    assert runtime.folder == runtime_folder()
    names = {p.name for p in runtime.folder.iterdir()}
    assert names == {Path(n).name for n in wr.FILES} | set(wr.LICENSE_FILES) | {wr.MANIFEST}
    assert "MIT License" in runtime.file("LICENSE").read_text()
    manifest = json.loads(runtime.file(wr.MANIFEST).read_text())
    assert manifest["integrity"] == wr.INTEGRITY and manifest["version"] == wr.VERSION
    # A cached file changed afterwards (disk error, someone's edit): found, and the package fetched again.
    runtime.file("ort.wasm.min.js").write_text("alert('changed')")
    assert not wr.intact(runtime.folder)
    again = wr.web_runtime()
    assert wr.intact(again.folder) and b"wasm" in again.file("ort.wasm.min.js").read_bytes()


def test_without_npm_the_tarball_is_downloaded_from_the_registry_npm_would_use(tmp_path, monkeypatch):
    data = fake_tarball(b"downloaded")
    registry = tmp_path / "registry"
    (registry / wr.PACKAGE / "-").mkdir(parents=True)
    (registry / wr.PACKAGE / "-" / f"{wr.PACKAGE}-{wr.VERSION}.tgz").write_bytes(data)
    monkeypatch.setattr(wr.shutil, "which", lambda name: None)
    monkeypatch.setenv("npm_config_registry", registry.as_uri() + "/")
    monkeypatch.setattr(wr, "INTEGRITY", integrity_of(data))
    runtime = wr.web_runtime()
    assert runtime.file("package.json").read_bytes() == b"downloadedpackage.json"
    assert json.loads(runtime.file(wr.MANIFEST).read_text())["source"].startswith("file:")


def test_offline_the_message_says_what_was_tried_and_how_to_give_the_tarball(tmp_path, monkeypatch):
    monkeypatch.setattr(wr.shutil, "which", lambda name: None)
    monkeypatch.setenv("npm_config_registry", (tmp_path / "nowhere").as_uri())
    with pytest.raises(BinclsError) as err:
        wr.web_runtime()
    text = str(err.value)
    assert "could not be fetched" in text and "nowhere" in text
    assert f"npm pack {wr.PACKAGE}@{wr.VERSION}" in text and wr.TARBALL_ENV in text


@pytest.mark.slow
def test_the_pinned_package_from_the_registry_has_its_published_hash_and_the_page_files(web_runtime_cache):
    folder = web_runtime_cache / f"{wr.PACKAGE}-{wr.VERSION}"
    assert wr.intact(folder)
    pkg = json.loads((folder / "package.json").read_text())
    assert pkg["name"] == wr.PACKAGE and pkg["version"] == wr.VERSION and pkg["license"] == "MIT"
    assert (folder / "ort-wasm-simd-threaded.wasm").read_bytes()[:4] == b"\0asm"
    assert "ONNX Runtime Web v" + wr.VERSION in (folder / "ort.wasm.min.js").read_text()[:200]
