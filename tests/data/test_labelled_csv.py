"""A labelled CSV is data wherever two folders are: relative and absolute paths, the data root, bad rows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from imagefactory import make_folder

from bincls.data.dataset import load_data, scan_folders
from bincls.data.folder_layout import resolve_layout
from bincls.data.labelled_csv import read_labelled_csv, write_labelled_csv
from bincls.errors import BinclsError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pile(tmp_path) -> Path:
    make_folder(tmp_path / "pile" / "x", 12)
    make_folder(tmp_path / "pile" / "y", 12, seed=100)
    return tmp_path / "pile"


def _rows() -> list[str]:
    return ["path,label", *(f"{c}/img{i:03d}.png,{label}" for c, label in (("x", "a"), ("y", "b"))
                            for i in range(12))]  # fmt: skip


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_relative_and_absolute_paths_make_a_dataset(pile):
    lines = ["path,label"]
    lines += [f"x/img{i:03d}.png,cat" for i in range(12)]
    lines += [f"{pile / 'y' / f'img{i:03d}.png'},dog" for i in range(12)]
    csv_path = _write(pile / "labels.csv", "\n".join(lines) + "\n")
    layout = resolve_layout([str(csv_path)])
    assert layout.kind == "csv" and layout.class_names == ["cat", "dog"]
    data = load_data([str(csv_path)])
    assert data.counts()["train"]["cat"] > 0 and len(data.split) == 24
    assert set(data.split["path"]) == {str(p) for p in pile.rglob("*.png")}
    renamed = resolve_layout([str(csv_path)], ["Katze", "Hund"])
    assert renamed.class_names == ["Katze", "Hund"] and renamed.listing == layout.listing


def test_bad_rows_are_listed_with_the_reason_never_a_crash(pile):
    lines = [
        "label,path,note",  # columns in any order, others ignored
        "cat,x/img000.png,fine",
        "cat,x/img001.png,",
        "dog,y/img000.png,",
        "dog,y/img001.png,",
        ",x/img002.png,no label",
        "cat,,no path",
        "skip,x/img003.png,an answer",
        "cat,x/missing.png,absent",
        "cat,y/img002.png,conflict",
        "dog,y/img002.png,conflict",
        "dog,y/img001.png,twice",
        "",
    ]
    csv_path = _write(pile / "l.csv", "\n".join(lines) + "\n")
    listed = read_labelled_csv(csv_path)
    reasons = dict((where.split(": ")[0], why) for where, why in listed.bad)
    assert reasons["l.csv row 6"] == "no label" and reasons["l.csv row 7"] == "no path"
    assert "not a class" in reasons["l.csv row 8"]
    assert "labelled 'cat' in row 10" in reasons["l.csv row 11"]
    assert "same image as row 5" in reasons["l.csv row 12"]
    scan = scan_folders([str(csv_path)])
    assert len(scan.images) == 4  # the conflict left out entirely
    missing = [s for s in scan.skipped if s.path.endswith("missing.png")]
    assert missing and "No such file" in missing[0].reason
    assert len(scan.skipped) == len(listed.bad) + 1


def test_duplicates_and_the_split_work_on_a_csv(pile):
    shutil.copy(pile / "x" / "img000.png", pile / "copy.png")
    lines = _rows()
    csv_path = _write(pile / "l.csv", "\n".join(lines + ["copy.png,b"]) + "\n")
    scan = scan_folders([str(csv_path)])
    assert scan.conflicts == [[str(pile / "copy.png"), str(pile / "x" / "img000.png")]]
    assert len(scan.usable) == 23


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("file,class\na.png,x\n", "no path and label columns"),
    ("path,label\nx/img000.png,a\n", "exactly two classes"),
    ("path,label\nx/img000.png,a\nx/img001.png,b\ny/img000.png,c\n", "exactly two classes"),
])  # fmt: skip
def test_a_file_that_is_not_a_labelled_csv_is_one_clear_error(pile, text, message):
    csv_path = _write(pile / "l.csv", text)
    with pytest.raises(BinclsError, match=message):
        resolve_layout([str(csv_path)])


def test_the_data_root_confines_every_row(pile, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    make_folder(outside, 1, seed=999)
    (pile / "link.png").symlink_to(outside / "img000.png")
    lines = ["path,label", "x/img000.png,a", "x/img001.png,a", "y/img000.png,b", "y/img001.png,b",
             f"{outside / 'img000.png'},a", "../outside/img000.png,b", "link.png,a"]  # fmt: skip
    csv_path = _write(pile / "l.csv", "\n".join(lines) + "\n")
    monkeypatch.setenv("BINCLS_DATA_ROOT", str(pile))
    listed = read_labelled_csv(csv_path)
    assert len(listed.rows) == 4 and len(listed.bad) == 3
    assert all("leads outside" in why for _, why in listed.bad)
    away = _write(outside / "l.csv", "path,label\nimg000.png,a\n")
    with pytest.raises(BinclsError, match="leads outside"):
        resolve_layout([str(away)])


def test_a_written_csv_reads_back_with_odd_names(tmp_path):
    odd = tmp_path / "we ird" / "a,b\n\"c\" é.png"
    odd.parent.mkdir()
    odd.write_bytes(b"x")
    out = write_labelled_csv(tmp_path / "out.csv", [(str(odd), "cat"), (str(tmp_path / "b.png"), "dog")])
    assert read_labelled_csv(out).rows == ((str(odd), "cat"), (str(tmp_path / "b.png"), "dog"))


def test_a_csv_and_a_folder_together_is_refused(pile):
    csv_path = _write(pile / "l.csv", "path,label\nx/img000.png,a\ny/img000.png,b\n")
    with pytest.raises(BinclsError, match="give it alone"):
        resolve_layout([str(csv_path), str(pile / "x")])


@pytest.mark.slow
def test_scan_train_and_evaluate_take_a_csv_on_the_command_line(pile, tmp_path):
    lines = _rows()
    csv_path = _write(pile / "l.csv", "\n".join(lines) + "\n")
    env = {**os.environ, "BINCLS_RUNS_DIR": str(tmp_path / "runs")}

    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "bincls", *args], cwd=ROOT, env=env, capture_output=True,
                             text=True)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout

    scanned = json.loads(cli("scan", str(csv_path), "--json"))
    assert scanned["layout"] == "csv" and [c["images"] for c in scanned["classes"]] == [12, 12]
    run = cli("train", str(csv_path), "--model", "seed-lenet", "--weights", "none", "--epochs", "1",
              "--img-size", "32", "--workers", "0").strip().splitlines()[-1]  # fmt: skip
    metrics = json.loads(cli("evaluate", run, "--data", str(csv_path), "--json"))
    assert metrics["n"] == 24 and metrics["classes"] == ["a", "b"]
