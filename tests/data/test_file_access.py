"""Hostile folders: links out of the data root (issue 16 class 1), FIFOs, sockets and devices (class 2),
and folders that cannot be read (class 11), on real links, real special files and a real unprivileged
process; through the engine, the CLI and (in tests/app/test_app_hostile.py) the pages."""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import hostile
import imagefactory as fac
import pytest

from bincls import BinclsError
from bincls.data.data_root import ENV
from bincls.data.dataset import scan_folders
from bincls.data.file_access import open_regular, walk_files
from bincls.data.folder_layout import resolve_layout
from bincls.data.images import ImageProblem, inspect_file, load_rgb
from bincls.inference.predict import Predictor, expand_inputs
from bincls.paths import PROJECT_ROOT

OUTSIDE = "leads outside the folder this app may read"


@pytest.fixture
def world(tmp_path) -> dict[str, Path]:
    """A served root with a dataset whose links lead out of it, and a secret folder beside it."""
    root, secret = tmp_path / "served", tmp_path / "secret"
    fac.make_folder(root / "pets" / "cats", 4, seed=0)
    fac.make_folder(root / "pets" / "dogs", 4, seed=100)
    fac.make_folder(secret / "cats", 4, seed=500)
    fac.make_folder(secret / "dogs", 4, seed=600)
    hostile.fifo(secret / "trap.jpg")  # would block anyone who opened it
    return {"root": root, "secret": secret}


@pytest.fixture
def served(world, monkeypatch):
    monkeypatch.setenv(ENV, str(world["root"]))
    return world


def reasons(scan) -> dict[str, str]:
    return {s.path: s.reason for s in scan.skipped}


# Class 1: every path opened is confined -----------------------------------------------------------
def test_a_class_folder_linked_out_of_the_root_is_refused(served):
    root, secret = served["root"], served["secret"]
    shutil.copytree(root / "pets" / "cats", root / "linked" / "cats")
    os.symlink(secret / "dogs", root / "linked" / "dogs")
    with pytest.raises(BinclsError, match=OUTSIDE) as info:
        resolve_layout([root / "linked"])
    assert "linked/dogs" in str(info.value) and "Remove the link" in str(info.value)


def test_a_presplit_class_folder_linked_out_of_the_root_is_refused(served):
    root, secret = served["root"], served["secret"]
    for split in ("train", "val"):
        shutil.copytree(root / "pets" / "cats", root / "pre" / split / "cats")
    (root / "pre" / "val" / "dogs").mkdir()
    fac.make_folder(root / "pre" / "val" / "dogs", 2, seed=900)
    os.symlink(secret / "dogs", root / "pre" / "train" / "dogs")
    with pytest.raises(BinclsError, match=OUTSIDE):
        resolve_layout([root / "pre"])


def test_two_class_folders_given_outside_the_root_are_refused_by_the_engine_too(served):
    with pytest.raises(BinclsError, match=OUTSIDE):  # the CLI and the API, not only the pages' confine()
        resolve_layout([served["root"] / "pets" / "cats", served["secret"] / "dogs"])


def test_a_file_link_out_of_the_root_is_listed_and_never_opened(served):
    root, secret = served["root"], served["secret"]
    cats = root / "pets" / "cats"
    os.symlink(secret / "cats" / "img000.png", cats / "borrowed.png")
    os.symlink(secret / "trap.jpg", cats / "trap.jpg")  # opened, it would hang this test
    os.symlink(root / "pets" / "dogs" / "img000.png", cats / "inside-link.png")  # stays inside: used
    scan = scan_folders([root / "pets"])
    why = reasons(scan)
    assert OUTSIDE in why[str(cats / "borrowed.png")] and OUTSIDE in why[str(cats / "trap.jpg")]
    used = {r.path for r in scan.images}
    assert str(cats / "inside-link.png") in used and not any("borrowed" in p for p in used)
    with pytest.raises(ImageProblem, match=OUTSIDE):
        load_rgb(cats / "borrowed.png")
    # Without a root the same link is a plain file link and is used.
    os.environ.pop(ENV)
    assert str(cats / "borrowed.png") in {r.path for r in scan_folders([root / "pets"]).images}


def test_predicting_a_folder_confines_every_file_in_it(served, trained_sample_run):
    root, secret = served["root"], served["secret"]
    folder = root / "pets" / "cats"
    os.symlink(secret / "cats" / "img001.png", folder / "borrowed.png")
    os.symlink(secret / "cats", folder / "secret-folder")
    os.symlink(root / "pets" / "dogs", folder / "dogs-folder")
    preds = Predictor(trained_sample_run / "best.pt").predict_many(expand_inputs([folder]))
    errors = {p.source: p.error for p in preds}
    assert OUTSIDE in errors[str(folder / "borrowed.png")]
    assert OUTSIDE in errors[str(folder / "secret-folder")]
    assert errors[str(folder / "dogs-folder")] == "link to a folder (not followed)"  # listed, not silent
    assert sum(e is None for e in errors.values()) == 4


# Class 2: FIFOs, sockets and devices are never opened --------------------------------------------
@pytest.fixture
def specials(tmp_path) -> dict[str, str]:
    """A class folder with real special files named like images, and the reason each must get."""
    folder = tmp_path / "cats"
    fac.make_folder(folder, 3, seed=0)
    device = hostile.char_device(folder / "dev.png")  # where mknod is allowed: a device in place
    in_place = {str(device): "a character device, not a regular file"} if device else {}
    return {
        **in_place,
        str(hostile.fifo(folder / "z.jpg")): "a named pipe (FIFO), not a regular file",
        str(hostile.unix_socket(folder / "sock.png")): "a socket, not a regular file",
        str(hostile.link(folder / "zero.jpg", "/dev/zero")): "link to a character device, not a regular file",
        str(hostile.link(folder / "pipe-link.jpg", folder / "z.jpg")): "link to a named pipe (FIFO)",
    }


def test_special_files_get_their_own_reason_from_the_opener(specials):
    for path, reason in specials.items():
        started = time.monotonic()
        with pytest.raises(ImageProblem) as info:
            inspect_file(path)
        assert info.value.reason.startswith(reason) and "0 bytes" not in info.value.reason
        with pytest.raises(ImageProblem, match=re.escape(reason.split(",")[0])):
            load_rgb(path, max_side=32)
        with pytest.raises(BinclsError):
            open_regular(path)
        assert time.monotonic() - started < 5


def test_the_walk_lists_special_files_with_their_reason(specials, tmp_path):
    walk = walk_files(tmp_path / "cats")
    assert len(walk.files) == 3
    got = dict(walk.skipped)
    for path, reason in specials.items():
        assert got[path].startswith(reason)


def _predict_cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bincls", "predict", *args], capture_output=True, text=True,
        cwd=PROJECT_ROOT, timeout=timeout, **kw,
    )  # fmt: skip


def test_predict_on_a_folder_with_a_fifo_answers_for_every_file(specials, tmp_path, trained_sample_run):
    """`bincls predict` on the folder used to block forever on z.jpg."""
    out = _predict_cli(str(trained_sample_run / "best.pt"), str(tmp_path / "cats"), "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["source"]: r for r in json.loads(out.stdout)}
    for path, reason in specials.items():
        assert rows[path]["error"].startswith(reason)
    assert sum(r["error"] is None for r in rows.values()) == 3
    fifo = expand_inputs([tmp_path / "cats" / "z.jpg"])
    (given,) = Predictor(trained_sample_run / "best.pt").predict_many(fifo)
    assert given.error.startswith("a named pipe (FIFO)")  # given by name rather than found in a folder


def test_scan_cli_lists_special_files(specials, tmp_path):
    fac.make_folder(tmp_path / "dogs", 3, seed=50)
    cmd = [sys.executable, "-m", "bincls", "scan", str(tmp_path / "cats"), str(tmp_path / "dogs"), "--json",
           "--split", "0.6,0.4"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    skipped = {s["path"]: s["reason"] for s in json.loads(out.stdout)["skipped"]}
    for path, reason in specials.items():
        assert skipped[path].startswith(reason)


# Class 11: folders that cannot be read are listed --------------------------------------------------
_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 24, 1, 2


def _drop_root_read_powers() -> None:
    """In the child, before exec: root keeps its uid but loses the capabilities that let it read any
    folder whatever its mode, so a folder of mode 000 cannot be read by it (a real permission error)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _as_unprivileged(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `cmd` in a process that file permissions apply to (when the tests run as root: one without
    the capabilities that bypass them)."""
    drop = _drop_root_read_powers if os.geteuid() == 0 else None
    return subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=timeout,
                          preexec_fn=drop)  # fmt: skip


def test_an_unreadable_subfolder_is_listed_by_the_scan(tmp_path):
    cats, dogs = tmp_path / "data" / "cats", tmp_path / "data" / "dogs"
    fac.make_folder(cats, 3, seed=0)
    fac.make_folder(dogs, 3, seed=50)
    fac.make_folder(cats / "locked", 2, seed=90)
    (cats / "locked").chmod(0o000)
    try:
        out = _as_unprivileged([sys.executable, "-m", "bincls", "scan", str(tmp_path / "data"), "--json",
                                "--split", "0.6,0.4"])  # fmt: skip
    finally:
        (cats / "locked").chmod(0o755)
    assert out.returncode == 0, out.stderr
    skipped = {s["path"]: s["reason"] for s in json.loads(out.stdout)["skipped"]}
    assert skipped[str(cats / "locked")].startswith("folder cannot be read (Permission denied)")


def test_an_unreadable_subfolder_is_listed_by_predict(tmp_path, trained_sample_run):
    folder = tmp_path / "photos"
    fac.make_folder(folder, 2, seed=0)
    fac.make_folder(folder / "locked", 2, seed=90)
    (folder / "locked").chmod(0o000)
    try:
        model = str(trained_sample_run / "best.pt")
        out = _as_unprivileged([sys.executable, "-m", "bincls", "predict", model, str(folder), "--json"])
    finally:
        (folder / "locked").chmod(0o755)
    assert out.returncode == 0, out.stderr
    rows = {r["source"]: r for r in json.loads(out.stdout)}
    assert rows[str(folder / "locked")]["error"].startswith("folder cannot be read (Permission denied)")
    assert sum(r["error"] is None for r in rows.values()) == 2
