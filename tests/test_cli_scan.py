"""`python -m bincls scan` as a user runs it: a real subprocess, JSON and human output, and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imagefactory as fac
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Build one dataset, then run the subprocess calls at the same time (each start imports torch)."""
    base = tmp_path_factory.mktemp("cli")
    data = base / "data"
    fac.make_folder(data / "cats", 10, seed=0)
    fac.make_folder(data / "dogs", 8, seed=100)
    fac.text_file(data / "cats" / "notes.jpg")
    fac.write_bytes(data / "dogs" / "empty.png", b"")
    fac.truncated_jpeg(data / "dogs" / "half.jpg")
    fac.write_bytes(data / "cats" / "copy.png", (data / "cats" / "img000.png").read_bytes())
    fac.write_bytes(data / "dogs" / "stolen.png", (data / "cats" / "img001.png").read_bytes())
    fac.write_bytes(data / "cats" / ".DS_Store", b"Bud1")
    env = {**os.environ, "BINCLS_CACHE_DIR": str(base / "cache"), "PYTHONPATH": str(ROOT)}
    calls = {
        "json": ["scan", str(data), "--json"],
        "missing": ["scan", str(base / "no such folder")],
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "bincls", *args],
            cwd=base,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in calls.items()
    }
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        out[name] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    out["data"] = data
    return out


def test_json_is_one_object_with_the_documented_keys(cli):
    res = cli["json"]
    assert res.returncode == 0, res.stderr  # skipped files are not an error
    out = json.loads(res.stdout)  # fails on anything but exactly one JSON document
    assert {"classes", "skipped", "duplicates", "conflicts", "split"} <= set(out)
    data = cli["data"]
    assert [(c["name"], c["path"], c["images"]) for c in out["classes"]] == [
        ("cats", str(data / "cats"), 11),
        ("dogs", str(data / "dogs"), 9),
    ]


def test_json_lists_every_skipped_file_with_a_reason(cli):
    out = json.loads(cli["json"].stdout)
    data = cli["data"]
    reasons = {s["path"]: s["reason"] for s in out["skipped"]}
    assert set(reasons) == {
        str(data / "cats" / "notes.jpg"),
        str(data / "dogs" / "empty.png"),
        str(data / "dogs" / "half.jpg"),
        str(data / "cats" / ".DS_Store"),
    }
    assert reasons[str(data / "dogs" / "empty.png")].startswith("empty file")
    assert reasons[str(data / "dogs" / "half.jpg")].startswith("truncated or corrupt")
    assert all(isinstance(r, str) and r for r in reasons.values())


def test_json_duplicates_conflicts_and_split(cli):
    out = json.loads(cli["json"].stdout)
    data = cli["data"]
    within = sorted([str(data / "cats" / "copy.png"), str(data / "cats" / "img000.png")])
    across = sorted([str(data / "cats" / "img001.png"), str(data / "dogs" / "stolen.png")])
    assert sorted(out["duplicates"]) == sorted([within, across])
    assert out["conflicts"] == [across]
    split = out["split"]
    assert set(split) == {"train", "val", "test"}
    usable = {"cats": 11 - 1 - 1, "dogs": 9 - 1}  # one duplicate, one conflict copy each
    for cls, n in usable.items():
        assert sum(split[s][cls] for s in split) == n
        assert all(split[s][cls] >= 1 for s in split)


def test_bad_path_is_one_clear_line_and_nonzero(cli):
    res = cli["missing"]
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "no such folder" in lines[0] and "does not exist" in lines[0]
    assert res.stdout == ""


# In-process from here: the same `main` the subprocess runs, without paying for another start.


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    from bincls.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_bad_split_option_is_one_clear_line(cli, capsys):
    code, out, err = run_main(capsys, "scan", str(cli["data"]), "--split", "lots,of,train")
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert "--split" in err and out == ""


def test_two_paths_and_the_human_summary(cli, capsys):
    data = cli["data"]
    code, text, err = run_main(capsys, "scan", str(data / "cats"), str(data / "dogs"), "--names", "cat,dog")
    assert code == 0, err
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["class", "images", "usable"])
    cat, dog = lines[header + 1].split(), lines[header + 2].split()
    assert cat == ["cat", "11", "9", str(data / "cats")]
    assert dog == ["dog", "9", "8", str(data / "dogs")]
    rows = [line.split() for line in lines]
    split_rows = {r[0]: [int(v) for v in r[1:]] for r in rows if r and r[0] in ("train", "val", "test")}
    assert set(split_rows) == {"train", "val", "test"}
    assert [sum(col) for col in zip(*split_rows.values())] == [9, 8]
    assert "Skipped files: 4" in text
    assert "label conflicts: 1" in text


def test_more_than_two_paths_is_an_error(cli, capsys):
    data = cli["data"]
    code, _, err = run_main(capsys, "scan", str(data), str(data / "cats"), str(data / "dogs"))
    assert code != 0 and "two paths" in err
