"""`bincls label`: the command-line contract the checks use (--next, --export, --status, --answers)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bincls.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pile(sample_dir, tmp_path) -> Path:
    return Path(shutil.copytree(sample_dir, tmp_path / "pile"))


def label(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["label", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def truth(path: str) -> str:
    return Path(path).parent.name


def test_next_export_and_status_as_the_checks_call_them(pile, tmp_path, capsys):
    answers = tmp_path / "answers.csv"
    answers.write_text("")  # the first batch from an empty answers file
    base = (pile, "--classes", "ants", "bees", "--answers", answers)
    asked = []
    for round_ in range(4):
        code, out, _ = label(capsys, *base, "--next", 10, "--json")
        batch = json.loads(out)
        assert code == 0 and len(batch) == 10
        assert all(set(s) == {"path", "guess", "p"} and s["guess"] in ("ants", "bees") and 0.5 <= s["p"] <= 1
                   for s in batch)  # fmt: skip
        if round_ in (0, 3):
            assert label(capsys, *base, "--next", 10, "--json")[1] == out  # deterministic for the same inputs
        with open(answers, "a", newline="") as f:
            w = csv.writer(f)
            if round_ == 0:
                w.writerow(["path", "label"])
            w.writerows([s["path"], truth(s["path"])] for s in batch)
        asked += [s["path"] for s in batch]
    assert len(set(asked)) == 40
    out_csv = tmp_path / "L.csv"
    code, out, _ = label(capsys, *base, "--export", out_csv)
    rows = list(csv.DictReader(open(out_csv)))
    assert code == 0 and list(rows[0]) == ["path", "label"] and len(rows) == 40
    assert all(truth(r["path"]) == r["label"] for r in rows)
    label(capsys, *base, "--export", out_csv, "--accept-confident", "0.99")
    strict = len(list(csv.DictReader(open(out_csv))))
    label(capsys, *base, "--export", out_csv, "--accept-confident")
    loose = len(list(csv.DictReader(open(out_csv))))
    assert 40 <= strict <= loose <= 60
    code, out, _ = label(capsys, pile, "--classes", "ants", "bees", "--status", "--json")  # no --answers
    status = json.loads(out)
    assert status["answered"]["ants"] + status["answered"]["bees"] == 40
    assert status["estimate"]["answered"] == 40
    assert {"accuracy", "interval", "rest", "rest_interval", "how"} <= set(status["estimate"])
    assert status["confident"]["cut"] == 0.9 and status["unlabelled"] == 20


def test_answers_files_without_a_header_and_with_bad_rows(pile, tmp_path, capsys):
    paths = sorted(str(p) for p in pile.rglob("*.jpg"))
    answers = tmp_path / "a.csv"
    answers.write_text(f"{paths[0]},ants\n{paths[1]},SKIP\n{paths[2]},wasp\n,ants\n/nowhere/x.jpg,bees\n")
    code, out, err = label(capsys, pile, "--classes", "ants", "bees", "--answers", answers, "--status",
                           "--json")  # fmt: skip
    status = json.loads(out)
    assert code == 0 and status["answered"]["ants"] == 1 and status["answered"]["skip"] == 1
    assert "not in the pile" in err and "wasp" in err and "no path" in err


@pytest.mark.parametrize("args, message", [
    (["--next", "3", "--accept-confident"], "goes with --export"),
    (["--status", "--answers", "/nowhere/a.csv"], "does not exist"),
])  # fmt: skip
def test_mistakes_are_one_line_errors(pile, capsys, args, message):
    code, _, err = label(capsys, pile, "--classes", "ants", "bees", *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_usage_errors_exit_2(pile, capsys):
    for args in (["--classes", "a", "b"], ["--classes", "a", "b", "--next", "2", "--status"],
                 ["--classes", "a", "b", "--export", "x.csv", "--accept-confident", "0.3"]):  # fmt: skip
        with pytest.raises(SystemExit) as stop:
            main(["label", str(pile), *args])
        assert stop.value.code == 2


@pytest.mark.slow
def test_torchrun_shares_the_feature_pass(pile, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "bincls", "label", str(pile), "--classes", "ants", "bees", "--features"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    # Both processes write to one pipe: their lines are found wherever they landed.
    said = sorted(re.findall(r"process (\d+): computed (\d+) of 60", out.stdout))
    assert said == [("0", "30"), ("1", "30")], out.stdout
    again = subprocess.run([sys.executable, "-m", "bincls", "label", str(pile), "--classes", "ants", "bees",
                            "--features"], cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    assert "computed 0 of 60" in again.stdout  # all in the cache


@pytest.mark.slow
def test_the_protocol_end_to_end_on_a_held_out_part(sample_dir, tmp_path):
    """The issue's protocol on the sample: four rounds of --next answered by an oracle (from an empty
    answers file), --export --accept-confident, train on L.csv, evaluate on the 20 photos held out. A tiny
    model keeps it short: this checks the chain, bench/labeling_protocol.py measures it."""
    pile, test = tmp_path / "pile", tmp_path / "test"
    for cls in ("ants", "bees"):
        photos = sorted((sample_dir / cls).iterdir())
        for i, p in enumerate(photos):
            dest = (test / cls / p.name) if i < 10 else (pile / f"{cls[0]}{i:02d}{p.suffix}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dest)
    env = {**os.environ, "BINCLS_RUNS_DIR": str(tmp_path / "runs")}

    def cli(*args) -> str:
        out = subprocess.run([sys.executable, "-m", "bincls", *map(str, args)], cwd=ROOT, env=env,
                             capture_output=True, text=True)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout

    answers = tmp_path / "answers.csv"
    answers.write_text("")
    lines = ["path,label"]
    for _ in range(4):
        batch = json.loads(cli("label", pile, "--classes", "ants", "bees", "--answers", answers, "--next", 5,
                               "--json"))  # fmt: skip
        lines += [f"{s['path']},{'ants' if Path(s['path']).name.startswith('a') else 'bees'}" for s in batch]
        answers.write_text("\n".join(lines) + "\n")
    labels = tmp_path / "L.csv"
    base = ("label", pile, "--classes", "ants", "bees", "--answers", answers)
    cli(*base, "--export", labels, "--accept-confident")
    rows = list(csv.DictReader(open(labels)))
    assert len(rows) >= 20
    run = cli("train", labels, "--model", "seed-lenet", "--weights", "none", "--epochs", 2, "--img-size", 32,
              "--workers", 0).strip().splitlines()[-1]  # fmt: skip
    metrics = json.loads(cli("evaluate", run, "--data", test / "ants", test / "bees", "--json"))
    assert metrics["n"] == 20 and 0 <= metrics["balanced_accuracy"] <= 1
