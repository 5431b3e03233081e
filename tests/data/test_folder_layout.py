"""What the user pointed at: two class folders, a root of two, a pre-split root; and every wrong input."""

from __future__ import annotations

import os
from pathlib import Path

import imagefactory as fac
import pytest

from bincls.data.dataset import load_data
from bincls.data.folder_layout import resolve_layout
from bincls.data.split import SplitConfig
from bincls.errors import BinclsError

# Words that tell the user what to do next; every layout error must contain one.
ADVICE = ("Give", "Pick", "Add", "Check", "Keep", "add", "give", "pick")


def assert_helpful(exc: BinclsError, path: Path) -> None:
    msg = str(exc)
    assert str(path) in msg, msg
    assert any(word in msg for word in ADVICE), msg
    assert "\n" not in msg


def test_two_class_folders_anywhere(tmp_path):
    a = tmp_path / "x" / "deep" / "cats"
    b = tmp_path / "elsewhere" / "dogs"
    fac.make_folder(a, 3)
    fac.make_folder(b, 3, seed=10)
    layout = resolve_layout([a, b])
    assert layout.kind == "two-folders" and not layout.presplit
    assert layout.class_names == ["cats", "dogs"]
    assert [c.folders for c in layout.classes] == [((str(a), None),), ((str(b), None),)]


def test_two_folders_keep_the_order_given(tmp_path):
    a, b = tmp_path / "zebra", tmp_path / "aardvark"
    layout = resolve_layout([_mk(a), _mk(b)])
    assert layout.class_names == ["zebra", "aardvark"]


def test_class_names_rename(tmp_path):
    a, b = _mk(tmp_path / "0"), _mk(tmp_path / "1")
    layout = resolve_layout([a, b], class_names=["normal", " defect "])
    assert layout.class_names == ["normal", "defect"]
    root = resolve_layout([tmp_path], class_names=["no", "yes"])
    assert root.class_names == ["no", "yes"]


@pytest.mark.parametrize("names", [["one"], ["a", "a"], ["a", ""], ["a", "b", "c"]])
def test_bad_class_names(tmp_path, names):
    with pytest.raises(BinclsError, match="names"):
        resolve_layout([_mk(tmp_path / "a"), _mk(tmp_path / "b")], class_names=names)


def test_same_folder_names_in_different_parents_stay_distinct(tmp_path):
    a, b = _mk(tmp_path / "site1" / "images"), _mk(tmp_path / "site2" / "images")
    names = resolve_layout([a, b]).class_names
    assert names[0] != names[1]
    assert "site1" in names[0] and "site2" in names[1]


def test_root_with_two_class_subfolders(tmp_path):
    fac.make_folder(tmp_path / "Bees", 2)
    fac.make_folder(tmp_path / "ants", 2, seed=5)
    layout = resolve_layout([tmp_path])
    assert layout.kind == "root"
    assert layout.class_names == ["ants", "Bees"]  # sorted regardless of case
    assert layout.classes[0].folders == ((str(tmp_path / "ants"), None),)


def test_root_ignores_hidden_and_system_folders(tmp_path):
    for junk in (".git", "__MACOSX", "$RECYCLE.BIN", "@eaDir"):
        _mk(tmp_path / junk / "x")
    _mk(tmp_path / "cats")
    _mk(tmp_path / "dogs")
    assert resolve_layout([tmp_path]).class_names == ["cats", "dogs"]


def test_macos_zip_wrapper_is_looked_through(tmp_path):
    # a zip made on a Mac: pets/{cats,dogs} plus __MACOSX/ beside the wrapper
    _mk(tmp_path / "__MACOSX" / "pets")
    _mk(tmp_path / "pets" / "cats")
    _mk(tmp_path / "pets" / "dogs")
    layout = resolve_layout([tmp_path])
    assert layout.class_names == ["cats", "dogs"]
    assert layout.roots == (str(tmp_path / "pets"),)
    assert any("pets" in n for n in layout.notes)


PRESPLIT = {
    "train-val": {"train": "train", "val": "val"},
    "train-val-test": {"train": "train", "val": "val", "test": "test"},
    "training-testing": {"training": "train", "testing": "test"},
    "training_set-test_set": {"training_set": "train", "test_set": "test"},
    "Train-Valid": {"Train": "train", "Valid": "val"},
}


def make_presplit(root: Path, dirs: dict[str, str], sizes=None) -> dict[str, dict[str, list[Path]]]:
    """root/<split dir>/<class>/ with distinct images; returns {split: {class: files}}."""
    sizes = sizes or {"train": 8, "val": 3, "test": 2}
    made: dict[str, dict[str, list[Path]]] = {}
    seed = 0
    for d, split in dirs.items():
        for cls in ("ants", "bees"):
            made.setdefault(split, {})[cls] = fac.make_folder(root / d / cls, sizes[split], seed=seed)
            seed += 100
    return made


@pytest.mark.parametrize("kind", sorted(PRESPLIT))
def test_presplit_layout_is_honoured_not_resplit(tmp_path, kind):
    dirs = PRESPLIT[kind]
    made = make_presplit(tmp_path, dirs)
    layout = resolve_layout([tmp_path])
    assert layout.presplit and layout.kind == "presplit"
    assert layout.class_names == ["ants", "bees"]
    given = {split for cls in layout.classes for _, split in cls.folders}
    assert given == set(dirs.values())

    data = load_data([tmp_path])
    table = data.split
    assert len(table) == len(set(table["path"])) == sum(len(f) for s in made.values() for f in s.values())
    for split, per_class in made.items():
        for cls, files in per_class.items():
            rows = table[table["path"].isin([str(f) for f in files])]
            assert (rows["class"] == cls).all()
            if split == "train" and "val" not in made:
                # no validation folder: validation comes from train, and only from train
                assert set(rows["split"]) == {"train", "val"}
            else:
                assert (rows["split"] == split).all(), (split, cls, rows)
    # every split table row for a split named by a folder comes from that folder
    for split in made:
        if split == "train" and "val" not in made:
            continue
        expected = {str(f) for files in made[split].values() for f in files}
        assert set(table.loc[table["split"] == split, "path"]) == expected


def test_presplit_split_ignores_the_seed_and_ratios(tmp_path):
    make_presplit(tmp_path, PRESPLIT["train-val-test"])
    a = load_data([tmp_path]).split
    b = load_data([tmp_path], split=SplitConfig(0.5, 0.25, 0.25, seed=99)).split
    assert a.equals(b)


def test_presplit_with_mismatched_classes_is_an_error(tmp_path):
    _mk(tmp_path / "train" / "ants")
    _mk(tmp_path / "train" / "bees")
    _mk(tmp_path / "val" / "ants")
    _mk(tmp_path / "val" / "wasps")
    with pytest.raises(BinclsError) as exc:
        resolve_layout([tmp_path])
    assert "wasps" in str(exc.value) and str(tmp_path / "val") in str(exc.value)


def test_presplit_with_three_classes_in_a_split_is_an_error(tmp_path):
    for cls in ("a", "b", "c"):
        _mk(tmp_path / "train" / cls)
    with pytest.raises(BinclsError, match="exactly two class folders"):
        resolve_layout([tmp_path])


# ---- wrong inputs: each is a BinclsError that names the path and says what to do ----


def test_one_class(tmp_path):
    fac.make_folder(tmp_path / "only", 2)
    with pytest.raises(BinclsError) as exc:
        resolve_layout([tmp_path])
    assert_helpful(exc.value, tmp_path)
    assert "one class" in str(exc.value)


def test_three_classes(tmp_path):
    for name in ("a", "b", "c"):
        fac.make_folder(tmp_path / name, 1, seed=ord(name))
    with pytest.raises(BinclsError) as exc:
        resolve_layout([tmp_path])
    assert_helpful(exc.value, tmp_path)
    assert "found 3" in str(exc.value)


def test_empty_root_folder(tmp_path):
    with pytest.raises(BinclsError) as exc:
        resolve_layout([tmp_path])
    assert_helpful(exc.value, tmp_path)


def test_empty_class_folder(tmp_path):
    a = tmp_path / "a"
    fac.make_folder(a, 3)
    b = _mk(tmp_path / "b")
    with pytest.raises(BinclsError) as exc:
        load_data([a, b])
    assert_helpful(exc.value, b)
    assert "no usable images" in str(exc.value)


def test_class_folder_with_only_broken_files(tmp_path):
    a = tmp_path / "a"
    fac.make_folder(a, 3)
    b = tmp_path / "b"
    fac.text_file(b / "notes.jpg")
    fac.write_bytes(b / "empty.png", b"")
    with pytest.raises(BinclsError) as exc:
        load_data([a, b])
    assert_helpful(exc.value, b)


def test_file_instead_of_folder(tmp_path):
    f = fac.png(tmp_path / "x.png")
    with pytest.raises(BinclsError) as exc:
        resolve_layout([f])
    assert_helpful(exc.value, f)
    assert "is a file" in str(exc.value)
    with pytest.raises(BinclsError) as exc:
        resolve_layout([f, _mk(tmp_path / "b")])
    assert_helpful(exc.value, f)


def test_path_that_does_not_exist(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(BinclsError) as exc:
        resolve_layout([missing])
    assert_helpful(exc.value, missing)
    assert "does not exist" in str(exc.value)


def test_dangling_link_as_folder(tmp_path):
    link = tmp_path / "link"
    os.symlink(tmp_path / "gone", link)
    with pytest.raises(BinclsError) as exc:
        resolve_layout([link, _mk(tmp_path / "b")])
    assert str(link) in str(exc.value) and "does not exist" in str(exc.value)


def test_both_classes_the_same_folder(tmp_path):
    a = _mk(tmp_path / "a")
    for other in (a, str(a) + "/", tmp_path / "x" / ".." / "a"):
        _mk(tmp_path / "x")
        with pytest.raises(BinclsError) as exc:
            resolve_layout([a, other])
        assert_helpful(exc.value, a)
        assert "same folder" in str(exc.value)


def test_both_classes_the_same_folder_through_a_link(tmp_path):
    a = _mk(tmp_path / "a")
    link = tmp_path / "alias"
    os.symlink(a, link)
    with pytest.raises(BinclsError, match="same folder"):
        resolve_layout([a, link])


@pytest.mark.parametrize("outer_first", [True, False])
def test_one_class_folder_inside_the_other(tmp_path, outer_first):
    outer = _mk(tmp_path / "animals")
    inner = _mk(outer / "cats")
    paths = [outer, inner] if outer_first else [inner, outer]
    with pytest.raises(BinclsError) as exc:
        resolve_layout(paths)
    assert_helpful(exc.value, inner)
    assert "inside" in str(exc.value)


@pytest.mark.parametrize("n", [0, 3])
def test_wrong_number_of_paths(tmp_path, n):
    with pytest.raises(BinclsError, match="two class folders"):
        resolve_layout([_mk(tmp_path / str(i)) for i in range(n)])


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
