"""The audit's decisions on the keyed store (issue 24, class 5): nothing lost when two sessions decide at
once, a damaged file refused, only decisions on images of the dataset counted, and the same decisions
found whether a dataset is opened as its root, as its two class folders or through a link."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from imagefactory import make_folder

from bincls.data.dataset import load_data
from bincls.data.overlay import load_decisions, overlay_path, save_decisions
from bincls.errors import BinclsError

ROOT = Path(__file__).resolve().parents[2]

DECIDER = """
import sys
from bincls.data.overlay import save_decisions
root, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(first, first + n):
    save_decisions([root], {f"{root}/a/img{i:03d}.png": "exclude"})
"""


@pytest.fixture
def dataset(tmp_path) -> Path:
    make_folder(tmp_path / "data" / "a", 100)
    make_folder(tmp_path / "data" / "b", 100, seed=1000)
    return tmp_path / "data"


def test_two_sessions_deciding_at_once_lose_no_decision(dataset):
    procs = [subprocess.Popen([sys.executable, "-c", DECIDER, str(dataset), str(first), "50"], cwd=ROOT)
             for first in (0, 50)]  # fmt: skip
    assert all(p.wait(timeout=180) == 0 for p in procs)
    assert len(load_decisions([str(dataset)])) == 100


def test_a_truncated_decisions_file_is_refused_not_emptied(dataset):
    data = [str(dataset)]
    save_decisions(data, {str(dataset / "a" / f"img{i:03d}.png"): "exclude" for i in range(4)})
    path = overlay_path(data)
    cut = path.read_bytes()[:-20]
    path.write_bytes(cut)
    with pytest.raises(BinclsError, match="damaged"):
        load_decisions(data)
    with pytest.raises(BinclsError, match="damaged"):
        save_decisions(data, {str(dataset / "a" / "img010.png"): "keep"})
    assert path.read_bytes() == cut


def test_decisions_on_absent_images_count_for_nothing(dataset, tmp_path):
    from bincls.training.config import TrainConfig
    from bincls.training.loop import train

    data = [str(dataset)]
    absent = {str(dataset / "a" / f"gone{i}.png"): "exclude" for i in range(500)}
    save_decisions(data, {**absent, str(dataset / "a" / "img000.png"): "exclude"})
    result = train(TrainConfig(data=data, model="seed-lenet", epochs=1, img_size=32, workers=0,
                               weights="none"), runs_dir=tmp_path / "runs")  # fmt: skip
    log = result.run.log_path.read_text()
    assert "label audit: 1 image(s) excluded, 0 relabelled" in log
    assert len(load_decisions(data)) == 1  # the page counts only the decisions on images that exist


def test_decisions_for_a_root_apply_to_its_class_folders_and_through_a_link(dataset, tmp_path):
    from bincls.data.overlay import apply_overlay

    image = str(dataset / "a" / "img007.png")
    save_decisions([str(dataset)], {image: "relabel", str(dataset / "b" / "img001.png"): "exclude"})
    link = tmp_path / "link"
    link.symlink_to(dataset)
    for data in ([str(dataset / "a"), str(dataset / "b")], [str(link)], [str(link / "b"), str(link / "a")]):
        decided = load_decisions(data)
        assert decided.get(image) == "relabel" and decided.get(str(link / "a" / "img007.png")) == "relabel"
        source = load_data(data, decisions=decided)
        assert sum(r.path.endswith("b/img001.png") for r in source.scan.images) == 1
        assert any(p.endswith("b/img001.png") for p in source.scan.excluded), data
        assert apply_overlay(source.scan, decided).excluded == source.scan.excluded
        moved = [r for r in source.scan.images if r.path.endswith("a/img007.png")]
        a_label = source.class_names.index("a")
        assert moved[0].label == 1 - a_label
    assert overlay_path([str(link)]) == overlay_path([str(dataset / "b"), str(dataset / "a")])
