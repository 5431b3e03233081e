"""The label audit: wrong labels found on real images, outliers, the overlay of decisions, files untouched."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bincls.audit.label_audit import _label_rows, audit, out_of_sample_probabilities
from bincls.data.overlay import apply_overlay, forget_decisions, load_decisions, overlay_path, save_decisions
from bincls.paths import PROJECT_ROOT
from bincls.training.config import TrainConfig
from bincls.training.loop import train


def _digest(folder) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_confident_learning_ranks_flipped_labels_first():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(-1, 1, (200, 16)), rng.normal(1, 1, (200, 16))])
    truth = np.array([0] * 200 + [1] * 200)
    flipped = rng.choice(400, 12, replace=False)
    labels = truth.copy()
    labels[flipped] = 1 - labels[flipped]
    probs = out_of_sample_probabilities(features, labels)
    rows = _label_rows([f"img{i}" for i in range(400)], labels, probs, ["a", "b"])
    top = {int(r.path[3:]) for r in rows[:20]}
    assert len(top & set(flipped.tolist())) >= 10
    assert all(r.kind == "label" and r.suggested != r.given for r in rows)
    assert [r.score for r in rows] == sorted((r.score for r in rows), reverse=True)


@pytest.fixture
def flipped_hymenoptera(hymenoptera, tmp_path):
    """Every hymenoptera image in two class folders (hard links), 8 of each class filed in the other."""
    root = tmp_path / "flip"
    for cls in ("ants", "bees"):
        (root / cls).mkdir(parents=True)
        for split in ("train", "val"):
            for f in sorted((hymenoptera / split / cls).iterdir()):
                os.link(f, root / cls / f.name)
    rng = np.random.default_rng(1)
    moved = []
    for cls, other in (("ants", "bees"), ("bees", "ants")):
        files = sorted(p for p in (root / cls).iterdir() if p.suffix.lower() == ".jpg")
        for i in rng.choice(len(files), 8, replace=False):
            files[i].rename(root / other / files[i].name)
            moved.append(str(root / other / files[i].name))
    return root, moved


@pytest.mark.slow
def test_audit_finds_flipped_labels_and_the_placeholder_and_touches_nothing(flipped_hymenoptera,
                                                                             imagenet_hub):
    root, moved = flipped_hymenoptera
    before = _digest(root)
    result = audit([str(root)])
    top = [r.path for r in result.rows[:32]]
    found = sum(p in moved for p in top)
    # Ants vs bees is hard (about 90% out-of-sample accuracy, so real mistakes compete with the flips).
    assert found >= 12, f"most of the 16 flipped labels rank near the top; {found} did"
    outliers = [r.path for r in result.rows if r.kind == "outlier"]
    assert any(p.endswith("imageNotFound.gif") for p in outliers)  # the "image not found" placeholder
    assert _digest(root) == before
    out = subprocess.run([sys.executable, "-m", "bincls", "audit", str(root), "--json"], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, check=True, env={**os.environ})  # fmt: skip
    rows = json.loads(out.stdout)["rows"]
    assert {"path", "given", "suggested", "score", "kind"} <= set(rows[0])
    assert [r["path"] for r in rows[:32]] == top  # the CLI gives the same ranking


def test_decisions_are_an_overlay_and_training_honours_them(sample_dir, tmp_path):
    data = [str(sample_dir)]
    ants = sorted(str(p) for p in (sample_dir / "ants").iterdir())
    assert load_decisions(data) == {}
    path = save_decisions(data, {ants[0]: "exclude", ants[1]: "relabel", ants[2]: "keep"})
    assert path == overlay_path(data) and str(sample_dir) not in str(path)  # never in the user's folder
    assert load_decisions(data)[ants[1]] == "relabel"
    with pytest.raises(Exception, match="Unknown audit decision"):
        save_decisions(data, {ants[3]: "delete"})
    before = _digest(sample_dir)
    result = train(TrainConfig(data=data, epochs=1, img_size=32, workers=0), runs_dir=tmp_path)
    split = pd.read_csv(result.run.split_path)
    assert ants[0] not in set(split["path"])
    assert split.set_index("path").loc[ants[1], "class"] == "bees"
    assert json.loads((result.run.path / "audit_decisions.json").read_text())[ants[0]] == "exclude"
    assert "1 image(s) excluded, 1 relabelled" in result.run.log_path.read_text()
    ignored = train(TrainConfig(data=data, epochs=1, img_size=32, workers=0, audit_decisions=False),
                    runs_dir=tmp_path)  # fmt: skip
    assert ants[0] in set(pd.read_csv(ignored.run.split_path)["path"])
    assert _digest(sample_dir) == before


def test_apply_overlay_leaves_the_scan_it_was_given_alone(sample_dir):
    from bincls.data.dataset import scan_folders

    scan = scan_folders([str(sample_dir)])
    first = scan.images[0]
    changed = apply_overlay(scan, {first.path: "relabel", scan.images[1].path: "exclude"})
    assert changed.images[0].label == 1 - first.label and scan.images[0].label == first.label
    assert scan.images[1].path in changed.excluded and scan.images[1].path not in scan.excluded


def test_forgetting_decisions_brings_the_images_back(tmp_path):
    from imagefactory import make_folder

    a, b = make_folder(tmp_path / "data" / "a", 3), make_folder(tmp_path / "data" / "b", 2, seed=5)
    data = [str(tmp_path / "data")]
    save_decisions(data, {str(a[0]): "exclude", str(a[1]): "relabel", str(b[0]): "keep"})
    forget_decisions(data, [str(a[0])])
    assert load_decisions(data) == {str(a[1]): "relabel", str(b[0]): "keep"}
    forget_decisions(data)
    assert load_decisions(data) == {} and overlay_path(data).is_file()
