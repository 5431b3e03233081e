"""The session with pretrained features (the shared ImageNet mobilenet_v2 weights in a torch hub cache)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bincls.labeling import LabelingSession

ROOT = Path(__file__).resolve().parents[2]
# ../shared beside the project; a git worktree one folder deeper finds it one level up
WEIGHTS = [base / "shared/weights/mobilenet_v2_imagenet.pth" for base in (ROOT.parent, ROOT.parent.parent)]


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    found = next((w for w in WEIGHTS if w.is_file()), None)
    if found is None:
        pytest.skip("the shared ImageNet weights are absent (only developer machines and CI have ../shared)")
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in ("mobilenet_v2-b0353104.pth", "mobilenet_v2-7ebf99e0.pth"):
        shutil.copy(found, checkpoints / name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return checkpoints


@pytest.mark.slow
def test_pretrained_guesses_are_good_after_twenty_answers(hub, sample_dir, tmp_path):
    pile = Path(shutil.copytree(sample_dir, tmp_path / "pile"))
    session = LabelingSession.open([pile], ("ants", "bees"))
    assert session.extractor.pretrained and session.extractor.model == "mobilenet_v2"
    for _ in range(2):
        batch = session.suggest(10)
        session.answer_many({s.path: Path(s.path).parent.name for s in batch})
    _, g, _, _, unavailable = session._state()
    rest = np.setdiff1d(np.arange(60), unavailable)
    right = np.mean([(g.p1[i] >= 0.5) == (Path(session.pile.paths[i]).parent.name == "bees") for i in rest])
    assert right >= 0.8, right
    status = session.status().to_dict()
    assert status["features"]["pretrained"] and not status["notes"]
    # the choice of extractor is remembered: the next call reads the cached features without torch
    code = ("import sys; from bincls.cli import main; "
            "main(['label', sys.argv[1], '--classes', 'ants', 'bees', '--next', '3', '--json']); "
            "print('torch' in sys.modules, file=sys.stderr)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, str(pile)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stderr.strip().endswith("False"), out.stderr
