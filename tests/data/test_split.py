"""The split: seeded, stratified, 70/20/10 by default, saved and reloaded, and refused when a split would
be empty."""

from __future__ import annotations

import imagefactory as fac
import pandas as pd
import pytest

from bincls.data.dataset import load_data
from bincls.data.folder_layout import ClassSource, Layout
from bincls.data.scan import ImageRecord, ScanResult
from bincls.data.split import COLUMNS, SplitConfig, load_split, make_split, save_split, split_counts
from bincls.errors import BinclsError


def fake_scan(n0: int, n1: int, presplit: dict | None = None, excluded=()) -> ScanResult:
    """A scan result of made-up records (the split only reads paths, labels and given splits)."""
    records = []
    names = ("cats", "dogs")
    if presplit is None:
        for label, n in enumerate((n0, n1)):
            records += [_rec(f"/d/{names[label]}/{i:04d}.jpg", label, None) for i in range(n)]
    else:
        for split, counts in presplit.items():
            for label, n in enumerate(counts):
                records += [_rec(f"/d/{split}/{names[label]}/{i:04d}.jpg", label, split) for i in range(n)]
    folders = [((f"/d/{n}", None),) for n in names]
    layout = Layout(
        classes=(ClassSource(names[0], folders[0]), ClassSource(names[1], folders[1])),
        presplit=presplit is not None,
        kind="presplit" if presplit else "root",
        roots=("/d",),
    )
    return ScanResult(
        layout=layout,
        images=records,
        skipped=[],
        duplicates=[],
        conflicts=[],
        excluded={p: "duplicate of somewhere" for p in excluded},
        channel_mean=(0.5,) * 3,
        channel_std=(0.25,) * 3,
    )


def _rec(path: str, label: int, split: str | None) -> ImageRecord:
    return ImageRecord(path, label, split, 10, 10, "RGB", "JPEG", 100, path)


def test_default_is_70_20_10_per_class():
    scan = fake_scan(100, 40)
    counts = split_counts(make_split(scan), scan.class_names)
    assert counts == {
        "train": {"cats": 70, "dogs": 28},
        "val": {"cats": 20, "dogs": 8},
        "test": {"cats": 10, "dogs": 4},
    }


@pytest.mark.parametrize("n0, n1", [(57, 13), (3, 250), (31, 31)])
@pytest.mark.parametrize("ratios", [(0.7, 0.2, 0.1), (0.8, 0.2, 0.0), (0.5, 0.25, 0.25)])
def test_every_class_gets_its_share(n0, n1, ratios):
    scan = fake_scan(n0, n1)
    table = make_split(scan, SplitConfig(*ratios, seed=3))
    counts = split_counts(table, scan.class_names)
    for name, n in zip(scan.class_names, (n0, n1)):
        assert sum(counts[s][name] for s in counts) == n
        for split, share in zip(("train", "val", "test"), ratios):
            got = counts[split][name]
            if share == 0:
                assert got == 0
            else:
                assert got >= 1
                assert abs(got - n * share) <= 1 + (n < 5)  # rounding, and at least one per share


def test_every_usable_image_appears_once_and_excluded_ones_never():
    scan = fake_scan(30, 20, excluded=["/d/cats/0003.jpg", "/d/dogs/0000.jpg"])
    table = make_split(scan)
    assert list(table.columns) == COLUMNS
    assert table["path"].is_unique
    assert set(table["path"]) == {r.path for r in scan.usable}
    assert len(table) == 48
    labels = {r.path: r.label for r in scan.images}
    assert all(labels[p] == lab for p, lab in zip(table["path"], table["label"]))
    assert all(scan.class_names[lab] == c for lab, c in zip(table["label"], table["class"]))


def test_same_seed_same_split_different_seed_different():
    scan = fake_scan(60, 45)
    a = make_split(scan, SplitConfig(seed=1))
    b = make_split(scan, SplitConfig(seed=1))
    c = make_split(scan, SplitConfig(seed=2))
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    # the different seed moves files, not counts
    assert split_counts(a, scan.class_names) == split_counts(c, scan.class_names)


def test_split_does_not_depend_on_scan_order():
    scan = fake_scan(25, 25)
    shuffled = fake_scan(25, 25)
    shuffled.images.reverse()
    pd.testing.assert_frame_equal(make_split(scan), make_split(shuffled))


def test_save_load_round_trip(tmp_path):
    scan = fake_scan(12, 9)
    # awkward names survive the CSV: commas, quotes, non-ASCII, spaces, a name pandas would read as NaN
    odd = ["/d/cats/a,b.jpg", '/d/cats/say "hi".jpg', "/d/cats/Ωmega ü.jpg", "/d/cats/NA"]
    scan.images.extend(_rec(p, 0, None) for p in odd)
    table = make_split(scan, SplitConfig(seed=7))
    path = tmp_path / "split.csv"
    save_split(table, path)
    back = load_split(path)
    pd.testing.assert_frame_equal(back, table[COLUMNS], check_dtype=False)
    assert set(odd) <= set(back["path"])
    assert not list(tmp_path.glob("*.tmp"))


def test_load_split_refuses_what_is_not_a_split_table(tmp_path):
    bad_cols = tmp_path / "a.csv"
    bad_cols.write_text("path,label\n/x.jpg,0\n")
    with pytest.raises(BinclsError, match="lacks the column"):
        load_split(bad_cols)
    bad_split = tmp_path / "b.csv"
    bad_split.write_text("path,class,label,split\n/x.jpg,cats,0,holdout\n")
    with pytest.raises(BinclsError, match="holdout"):
        load_split(bad_split)
    with pytest.raises(BinclsError, match="Cannot read"):
        load_split(tmp_path / "missing.csv")


@pytest.mark.parametrize("n_small", [1, 2])
def test_class_too_small_for_the_split_is_an_error_not_a_crash(n_small):
    scan = fake_scan(20, n_small)
    with pytest.raises(BinclsError) as exc:
        make_split(scan)
    msg = str(exc.value)
    assert "dogs" in msg and f"only {n_small}" in msg
    assert "split" in msg


def test_three_images_are_enough_for_three_splits():
    counts = split_counts(make_split(fake_scan(3, 3)), ["cats", "dogs"])
    assert all(counts[s] == {"cats": 1, "dogs": 1} for s in counts)


def test_class_without_usable_images_is_an_error():
    scan = fake_scan(5, 1, excluded=["/d/dogs/0000.jpg"])
    with pytest.raises(BinclsError, match="'dogs' has no usable images"):
        make_split(scan)


def test_too_small_class_through_load_data(tmp_path):
    fac.make_folder(tmp_path / "many", 10)
    fac.make_folder(tmp_path / "one", 1, seed=50)
    with pytest.raises(BinclsError, match="only 1 usable"):
        load_data([tmp_path])


def test_presplit_keeps_the_given_split_and_ignores_ratios():
    scan = fake_scan(0, 0, presplit={"train": (10, 8), "val": (4, 3), "test": (2, 2)})
    table = make_split(scan, SplitConfig(0.34, 0.33, 0.33, seed=5))
    given = {r.path: r.given_split for r in scan.images}
    assert all(given[p] == s for p, s in zip(table["path"], table["split"]))
    assert len(table) == 29


def test_presplit_without_val_draws_val_from_train_only():
    scan = fake_scan(0, 0, presplit={"train": (20, 10), "test": (5, 5)})
    table = make_split(scan)
    given = {r.path: r.given_split for r in scan.images}
    for path, split in zip(table["path"], table["split"]):
        assert given[path] == ("test" if split == "test" else "train")
    counts = split_counts(table, scan.class_names)
    assert counts["test"] == {"cats": 5, "dogs": 5}
    assert counts["val"]["cats"] >= 1 and counts["val"]["dogs"] >= 1
    assert counts["train"]["cats"] + counts["val"]["cats"] == 20


def test_presplit_with_one_training_image_cannot_make_val():
    scan = fake_scan(0, 0, presplit={"train": (5, 1), "test": (2, 2)})
    with pytest.raises(BinclsError, match="val split would have no 'dogs'"):
        make_split(scan)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.7,0.2,0.1", (0.7, 0.2, 0.1)),
        ("70,20,10", (0.7, 0.2, 0.1)),
        (" 8 , 1 , 1 ", (0.8, 0.1, 0.1)),
        ("0.8,0.2", (0.8, 0.2, 0.0)),
        ("3,1,0", (0.75, 0.25, 0.0)),
    ],
)
def test_split_config_parse(text, expected):
    cfg = SplitConfig.parse(text, seed=4)
    assert (cfg.train, cfg.val, cfg.test) == pytest.approx(expected)
    assert cfg.seed == 4


GARBAGE = ["", "abc", "0.7;0.2;0.1", "0.7,0.2,x", "1,1,1,1", "-1,1,1", "0,1,0", "0,0,0", "nan,1,1", "inf,1,1"]


@pytest.mark.parametrize("text", GARBAGE)
def test_split_config_parse_rejects_garbage(text):
    with pytest.raises(BinclsError) as exc:
        SplitConfig.parse(text)
    assert "split" in str(exc.value).lower()
