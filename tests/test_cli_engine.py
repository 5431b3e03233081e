"""The CLI's train, evaluate and predict commands, run as a user would (subprocesses)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bincls(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bincls", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("cli-runs")
    proc = bincls(
        "train",
        str(ROOT / "bincls" / "sample_data"),
        "--epochs",
        "2",
        "--img-size",
        "48",
        "--workers",
        "0",
        "--runs-dir",
        str(runs),
    )
    run = Path(proc.stdout.strip().splitlines()[-1])  # the run folder is the last line
    assert run.parent == runs and (run / "best.pt").is_file()
    # The model in one line at the start; its layer table in the run folder (issue 23: not 160 lines)
    assert "parameters" in proc.stderr and "Total params" not in proc.stderr
    assert "Total params" in (run / "model_summary.txt").read_text()
    return run


def test_evaluate_json(cli_run):
    out = json.loads(bincls("evaluate", str(cli_run), "--json").stdout)
    for key in ("accuracy", "precision", "recall", "f1", "auroc", "loss", "n", "confusion_matrix", "classes"):
        assert key in out, key
    assert out["classes"] == ["ants", "bees"]
    assert out["n"] == 6  # the sample's test split: 3 + 3
    (tn, fp), (fn, tp) = out["confusion_matrix"]
    assert tn + fp + fn + tp == out["n"]
    assert out["accuracy"] == pytest.approx((tn + tp) / out["n"])


def test_evaluate_other_folders_and_csv(cli_run, tmp_path):
    sample = ROOT / "bincls" / "sample_data"
    table = tmp_path / "res.csv"
    out = json.loads(
        bincls(
            "evaluate",
            str(cli_run / "best.pt"),
            "--data",
            str(sample / "bees"),
            str(sample / "ants"),
            "--json",
            "--csv",
            str(table),
        ).stdout
    )
    assert out["n"] == 60
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 60 and set(rows[0]) >= {"path", "true", "predicted", "probability"}
    # Folders given in the other order still get the model's own labels.
    assert {r["true"] for r in rows if "/bees/" in r["path"]} == {"bees"}


def test_evaluate_wrong_class_names_is_clear(cli_run, tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    sample = ROOT / "bincls" / "sample_data" / "ants"
    for f in list(sample.iterdir())[:3]:
        (tmp_path / "cats" / f.name).write_bytes(f.read_bytes())
        (tmp_path / "dogs" / f.name).write_bytes(f.read_bytes())
    proc = bincls("evaluate", str(cli_run), "--data", str(tmp_path), check=False)
    assert proc.returncode != 0
    assert "trained on" in proc.stderr and "Traceback" not in proc.stderr


def test_predict_json_csv_and_bad_file(cli_run, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    good = ROOT / "bincls" / "sample_data" / "bees"
    out = json.loads(bincls("predict", str(cli_run / "best.pt"), str(good), str(bad), "--json").stdout)
    assert len(out) == 31
    ok = [p for p in out if p["error"] is None]
    assert len(ok) == 30 and all(p["class_name"] in ("ants", "bees") for p in ok)
    assert all(0.5 <= p["probability"] <= 1 for p in ok)
    assert [p["error"] for p in out if p["error"]] == ["not an image (content not recognised)"]
    text = bincls(
        "predict", str(cli_run / "best.pt"), str(bad), str(good / sorted(os.listdir(good))[0]), "--csv"
    ).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["error"] and rows[1]["class"] in ("ants", "bees")


def test_errors_are_one_line_without_traceback(tmp_path):
    for args in (
        ["train", str(tmp_path / "missing")],
        ["evaluate", str(tmp_path)],
        ["predict", str(tmp_path / "x.pt"), str(tmp_path)],
    ):
        proc = bincls(*args, check=False)
        assert proc.returncode == 2, args
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    code = (
        "import os, torch\n"
        "class Evil:\n"
        f"    def __reduce__(self): return (os.system, ('touch {marker}',))\n"
        f"torch.save({{'format': 'bincls-checkpoint/1', 'x': Evil()}}, {str(evil)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    proc = bincls("predict", str(evil), str(ROOT / "bincls" / "sample_data" / "ants"), check=False)
    assert proc.returncode == 2 and "Refused" in proc.stderr and "posix.system" in proc.stderr
    assert not marker.exists()
