"""The run's own files against names and damage (issue 16 classes 5 and 8): every file a run writes reads
back any name the file system allows; damaged metrics lines, a status.json of the wrong shape and a
damaged best.pt are skipped, reported or set aside, and the run still resumes, on real runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imagefactory as fac
import pytest
from appsupport import open_page

from bincls import BinclsError
from bincls.data.dataset import scan_folders
from bincls.data.folder_layout import resolve_layout
from bincls.data.split import load_split
from bincls.inference.evaluate import evaluate
from bincls.models.checkpoint import read_checkpoint
from bincls.paths import PROJECT_ROOT, runs_dir
from bincls.runs.folder import RunFolder
from bincls.training.config import TrainConfig
from bincls.training.events import Listener
from bincls.training.loop import train

TINY = {"epochs": 2, "img_size": 32, "batch_size": 8, "workers": 0, "patience": 0}

# Names a file system allows and a CSV or a JSON writer can trip on.
ODD_NAMES = [
    "carriage\rreturn.png", "line\nfeed.png", "crlf\r\n.png", 'quote"and,comma.png', " leading space.png",
    "trailing space .png", "tab\there.png", "#hash.png", "back\\slash.png", "ünïcødé 画像.png",
    "emoji 🐜.png", "NA", "null.png", "\ufeffbom.png", "=SUM(A1).png", "'single'.png",
]  # fmt: skip


class StopAfter(Listener):
    """Asks the run to stop when it reports the end of `epoch`."""

    def __init__(self, epoch: int):
        self.epoch, self.run = epoch, None

    def run_started(self, info: dict) -> None:
        self.run = RunFolder(runs_dir() / info["run_id"])

    def epoch_end(self, record: dict) -> None:
        if record["epoch"] == self.epoch:
            self.run.request_stop()


@pytest.fixture
def odd_data(tmp_path) -> Path:
    """Two classes whose folder and file names hold every odd character (one class folder too)."""
    root = tmp_path / "data"
    for label, cls in enumerate(("ants", "bees\r at night")):
        fac.make_folder(root / cls, 6, seed=100 * label)
        for i, name in enumerate(ODD_NAMES):
            fac.png(root / cls / name, seed=1000 + 100 * label + i)
    return root


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bincls", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=300)  # fmt: skip


def test_every_file_of_a_run_round_trips_odd_names_through_train_evaluate_and_resume(odd_data):
    scan = scan_folders([odd_data])
    assert not scan.skipped and len(scan.images) == 2 * (6 + len(ODD_NAMES))
    first = train(TrainConfig(data=[str(odd_data)], **TINY), listeners=[StopAfter(1)])
    run = first.run
    assert first.state == "stopped"
    split = load_split(run.split_path)
    assert sorted(split["path"]) == sorted(r.path for r in scan.images)  # every name exactly as it is
    assert set(split["class"]) == {"ants", "bees\r at night"}
    assert train(TrainConfig.from_dict(run.config()), run=run, resume=True).state == "finished"
    ev = evaluate(run.path)
    assert set(ev.table["path"]) <= set(split["path"]) and len(ev.table) == (split["split"] == "test").sum()
    for name in ("config.json", "status.json"):
        json.loads((run.path / name).read_text(encoding="utf-8"))
    assert run.metrics_log().damaged_lines == []
    assert read_checkpoint(run.best_checkpoint)["class_names"] == ["ants", "bees\r at night"]


def test_a_folder_name_that_is_not_utf8_is_refused_with_a_message(tmp_path):
    root = os.fsencode(tmp_path) + b"/caf\xe9"
    for cls in (b"/ants", b"/bees"):
        fac.make_folder(os.fsdecode(root + cls), 3)
    with pytest.raises(BinclsError, match="not UTF-8"):
        resolve_layout([os.fsdecode(root)])
    with pytest.raises(BinclsError, match="not UTF-8"):
        resolve_layout([os.fsdecode(root + b"/ants"), os.fsdecode(root + b"/bees")])


# Damaged run files ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stopped_template(tmp_path_factory) -> Path:
    """A real run stopped after its first of two epochs (trained once for this module: copy it)."""
    from conftest import SAMPLE

    base = tmp_path_factory.mktemp("stopped-run")
    holder: list[str] = []

    class StopAtFirstEpoch(Listener):
        def run_started(self, info: dict) -> None:
            holder.append(info["run_id"])

        def epoch_end(self, record: dict) -> None:
            RunFolder(base / holder[0]).request_stop()

    result = train(TrainConfig(data=[str(SAMPLE)], **TINY), runs_dir=base, listeners=[StopAtFirstEpoch()])
    assert result.state == "stopped"
    return result.run.path


@pytest.fixture
def stopped_run(stopped_template) -> RunFolder:
    """That run, copied into this test's own runs folder (the one the app reads)."""
    dest = runs_dir() / stopped_template.name
    shutil.copytree(stopped_template, dest)
    return RunFolder(dest)


DAMAGE = [
    b"\xff\xfe not UTF-8 at all\n",
    b'{"kind": "step", "note": "caf' + "é".encode()[:1] + b"\n",  # cut inside a character
    b'{"kind": "epoch", "epoch": "two", "epoch_time": 1.0}\n',  # edited by hand
    b'{"kind": "epoch", "epoch": 9, "epoch_time": null}\n',  # a time that is not one
    b'{"kind": "epoch", "val_loss": 0.5}\n',  # no epoch
    b'{"kind": "step", "epoch": 1, "step": 1, "steps_per_epoch": 3, "global_step": 1, "loss": "low"}\n',
    b"[1, 2, 3]\n",
    b"42\n",
    b'{"kind": "resumed", "epoch": "x", "global_step": 1}\n',
]


def test_damaged_metrics_lines_are_skipped_reported_and_the_run_resumes(stopped_run):
    run = stopped_run
    good = run.read_metrics()
    with open(run.path / "metrics.jsonl", "ab") as f:
        for line in DAMAGE:
            f.write(line)
    log = run.metrics_log()
    assert log.records == good and len(log.damaged_lines) == len(DAMAGE)
    assert f"skipped {len(DAMAGE)} damaged line(s)" in log.note()
    out = _cli("train", "--resume", str(run.path))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert run.status()["state"] == "finished"
    assert f"skipped {len(DAMAGE)} damaged line(s)" in run.log_path.read_text()
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == [1, 2]


WRONG_STATUS = [
    [1, 2], "running", 42,
    {"state": ["running"], "pid": "me", "epoch": "x", "started": "yesterday", "resumes": -1},
]  # fmt: skip


def test_a_status_of_the_wrong_shape_reads_as_unknown_and_the_run_resumes(stopped_run):
    run = stopped_run
    for status in WRONG_STATUS:
        (run.path / "status.json").write_text(json.dumps(status))
        st = run.status()
        assert st["state"] == "unknown" and st["damaged"], status
        run.set_status(message="rewritten")  # writing over a damaged status works too
        assert run.status()["message"] == "rewritten"
    (run.path / "status.json").write_text(json.dumps(WRONG_STATUS[0]))
    assert train(TrainConfig.from_dict(run.config()), run=run, resume=True).state == "finished"
    assert run.status()["state"] == "finished" and "damaged" not in run.status()


def test_the_pages_render_a_run_with_damaged_files(stopped_run):
    run = stopped_run
    with open(run.path / "metrics.jsonl", "ab") as f:
        f.writelines(DAMAGE)
    (run.path / "status.json").write_text("[]")
    for page in ("runs", "train"):
        at = open_page(page)  # raises if the page raised
        assert not at.exception


def test_a_damaged_best_checkpoint_with_a_good_last_one_still_resumes(stopped_run):
    run = stopped_run
    data = run.best_checkpoint.read_bytes()
    run.best_checkpoint.write_bytes(data[: len(data) // 3])
    with pytest.raises(BinclsError, match="damaged"):
        read_checkpoint(run.best_checkpoint)
    assert train(TrainConfig.from_dict(run.config()), run=run, resume=True).state == "finished"
    assert (run.path / "best.pt.damaged").exists()
    assert read_checkpoint(run.best_checkpoint)["epoch"] >= 2  # a fresh best from the resumed epochs
    assert "best.pt was damaged" in run.log_path.read_text()
