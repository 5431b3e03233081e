"""Near-duplicates: the same photo resized, re-encoded, cropped, re-exposed or mirrored is found in the
scan, shown in `scan --json`, and never straddles the split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from bincls.cli import main as cli_main
from bincls.data import near_duplicates
from bincls.data.dataset import load_data
from bincls.data.folder_layout import resolve_layout
from bincls.data.near_duplicates import close_pairs, group_indices
from bincls.data.scan import scan_layout
from bincls.data.split import SplitConfig

EDITS = {
    "resized": lambda im: (im.resize((im.width // 2, im.height // 2), Image.LANCZOS), 92),
    "jpeg15": lambda im: (im, 15),
    "cropped5": lambda im: (im.crop((im.width // 40, im.height // 40, im.width - im.width // 40,
                                     im.height - im.height // 40)), 92),  # fmt: skip
    "brighter": lambda im: (ImageEnhance.Brightness(im).enhance(1.25), 92),
    "mirrored": lambda im: (ImageOps.mirror(im), 92),
}


def sample_photos(sample_dir: Path) -> list[Path]:
    return sorted((sample_dir / "ants").iterdir()) + sorted((sample_dir / "bees").iterdir())


def planted(tmp_path: Path, sample_dir: Path) -> tuple[Path, dict[str, set[str]]]:
    """Two classes of the sample's distinct photos, plus an edited copy of 10 of them each, half filed
    under the other class (a label conflict). {original path: the paths of its copies}."""
    root = tmp_path / "data"
    photos = sample_photos(sample_dir)
    copies: dict[str, set[str]] = {}
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
    for k, src in enumerate(photos):
        cls = "a" if k < 30 else "b"
        dest = root / cls / src.name
        dest.write_bytes(src.read_bytes())
        if k % 6:
            continue
        name = list(EDITS)[(k // 6) % len(EDITS)]
        edited, quality = EDITS[name](Image.open(src).convert("RGB"))
        other = ("b" if cls == "a" else "a") if (k // 6) % 2 else cls
        copy = root / other / f"{name}-{src.stem}.jpg"
        edited.save(copy, "JPEG", quality=quality)
        copies[str(dest)] = {str(copy)}
    return root, copies


@pytest.fixture(scope="module")
def planted_scan(tmp_path_factory, sample_dir_module):
    root, copies = planted(tmp_path_factory.mktemp("near"), sample_dir_module)
    return root, copies, scan_layout(resolve_layout([root]), use_cache=False)


@pytest.fixture(scope="module")
def sample_dir_module():
    from bincls.paths import SAMPLE_DATA

    return Path(SAMPLE_DATA)


def test_every_planted_copy_is_grouped_with_its_original_and_nothing_else(planted_scan):
    _, copies, scan = planted_scan
    groups = {frozenset(g.paths) for g in scan.near_duplicates}
    wanted = {frozenset({orig, *c}) for orig, c in copies.items()}
    assert groups == wanted
    for g in scan.near_duplicates:
        assert g.distances[0] == 0 and all(0 <= d <= 8 for d in g.distances)
        assert g.label_conflict == (len(set(g.classes)) > 1)
    assert sum(g.label_conflict for g in scan.near_duplicates) >= 4  # copies filed under the other class


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shares", [(0.7, 0.2, 0.1), (0.5, 0.25, 0.25), (0.8, 0.2, 0.0)])
def test_no_group_straddles_the_split(planted_scan, seed, shares):
    root, _, scan = planted_scan
    from bincls.data.dataset import split_data

    data = split_data(scan, SplitConfig(*shares, seed=seed))
    where = dict(zip(data.split["path"], data.split["split"]))
    for g in scan.near_duplicates:
        assert len({where[p] for p in g.paths}) == 1, g
    assert set(where) == {r.path for r in scan.usable}  # near-duplicates still train: none dropped
    counts = data.counts()
    for name in scan.class_names:  # still stratified: each class near its shares
        n = sum(counts[s][name] for s in counts)
        for split, share in zip(("train", "val", "test"), shares):
            assert abs(counts[split][name] - n * share) <= 3


def test_scan_json_lists_groups_with_paths_distances_and_conflicts(planted_scan, capsys):
    root, copies, _ = planted_scan
    assert cli_main(["scan", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    groups = out["near_duplicates"]
    assert len(groups) == len(copies)
    for g in groups:
        assert set(g) == {"paths", "distances", "classes", "label_conflict"}
        assert len(g["paths"]) == len(g["distances"]) == len(g["classes"]) == 2
    assert cli_main(["scan", str(root)]) == 0
    text = capsys.readouterr().out
    assert f"Near-duplicate groups: {len(copies)} " in text


def test_distinct_photos_are_not_merged(sample_dir):
    scan = scan_layout(resolve_layout([sample_dir]), use_cache=False)
    assert scan.near_duplicates == []


def test_byte_identical_copies_join_their_near_duplicate_group(tmp_path, sample_dir):
    src = sample_photos(sample_dir)[0]
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
    for k in range(3):
        (tmp_path / "b" / f"other{k}.jpg").write_bytes(sample_photos(sample_dir)[40 + k].read_bytes())
    (tmp_path / "a" / "x.jpg").write_bytes(src.read_bytes())
    (tmp_path / "a" / "x-copy.jpg").write_bytes(src.read_bytes())
    Image.open(src).convert("RGB").save(tmp_path / "a" / "x-q20.jpg", quality=20)
    scan = scan_layout(resolve_layout([tmp_path]), use_cache=False)
    [group] = scan.near_duplicates
    assert [Path(p).name for p in group.paths] == ["x-copy.jpg", "x-q20.jpg", "x.jpg"]
    assert scan.duplicates == [[str(tmp_path / "a" / "x-copy.jpg"), str(tmp_path / "a" / "x.jpg")]]


def test_presplit_copy_in_val_or_test_is_left_out_with_the_reason(tmp_path, sample_dir):
    photos = sample_photos(sample_dir)
    for split, cls, items in [("train", "ants", photos[:8]), ("train", "bees", photos[30:38]),
                              ("val", "ants", photos[8:11]), ("val", "bees", photos[38:41])]:  # fmt: skip
        (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
        for p in items:
            (tmp_path / split / cls / p.name).write_bytes(p.read_bytes())
    Image.open(photos[0]).convert("RGB").resize((250, 174)).save(tmp_path / "val" / "ants" / "small.jpg")
    data = load_data([tmp_path])
    leaked = str(tmp_path / "val" / "ants" / "small.jpg")
    assert "near-duplicate of" in data.scan.excluded[leaked] and "train" in data.scan.excluded[leaked]
    assert leaked not in set(data.split["path"])


@pytest.mark.parametrize("full_up_to", [0, 10_000])  # the index, and every pair at once
def test_the_index_finds_exactly_the_pairs_a_full_comparison_finds(monkeypatch, full_up_to):
    monkeypatch.setattr(near_duplicates, "FULL_UP_TO", full_up_to)
    rng = np.random.default_rng(3)
    n = 1500
    h = rng.integers(0, 2**63, n, dtype=np.uint64)
    for k in range(0, 240, 3):  # planted: 0..11 bits flipped
        flips = rng.choice(64, size=int(rng.integers(0, 12)), replace=False)
        h[k + 1] = h[k] ^ np.uint64(sum(1 << int(b) for b in flips))
    mirrored = rng.integers(0, 2**63, n, dtype=np.uint64)
    mirrored[500:600:2] = h[501:601:2] ^ np.uint64(3)  # an image whose mirror is close to another
    found = {tuple(sorted(p)) for batch in close_pairs(h, mirrored, 8) for p in batch.tolist()}
    plain = np.bitwise_count(h[:, None] ^ h[None, :])
    mirror = np.bitwise_count(mirrored[:, None] ^ h[None, :])
    close = np.minimum(np.minimum(plain, mirror), mirror.T) <= 8
    np.fill_diagonal(close, False)
    assert found == {(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(close)))}
    assert len(found) > 80
    assert group_indices(n, close_pairs(h, mirrored, 8)) == group_indices(n, [np.array(sorted(found))])
