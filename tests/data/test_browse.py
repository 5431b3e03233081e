"""Folder browsing without decoding: image counts by extension, subfolder listings, cache stamps."""

from __future__ import annotations

import os

from PIL import Image

from bincls.data.browse import (
    IMAGE_EXTENSIONS,
    count_images,
    file_stamp,
    folder_fingerprint,
    is_image_name,
    list_subfolders,
)
from bincls.data.images import ACCEPTED_FORMATS


def _touch(path, data: bytes = b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_the_extensions_are_those_of_the_accepted_formats():
    formats = Image.registered_extensions()
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".mpo"} <= IMAGE_EXTENSIONS
    assert all(formats[e] in ACCEPTED_FORMATS for e in IMAGE_EXTENSIONS)
    assert not {".heic", ".avif", ".svg", ".pdf", ".txt", ".zip"} & IMAGE_EXTENSIONS
    assert is_image_name("Photo.JPG") and is_image_name("scan.tiff")
    assert not is_image_name(".hidden.jpg") and not is_image_name("notes.txt") and not is_image_name("jpg")


def test_count_images_goes_by_extension_below_the_folder_and_skips_junk(tmp_path):
    _touch(tmp_path / "a.jpg", b"not even an image: counting never decodes")
    _touch(tmp_path / "b.PNG")
    _touch(tmp_path / "deep" / "er" / "c.webp")
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / "._a.jpg")  # a macOS resource fork
    _touch(tmp_path / "__MACOSX" / "d.jpg")
    _touch(tmp_path / ".thumbnails" / "e.jpg")
    assert count_images(tmp_path) == (3, False)


def test_count_images_stops_at_its_caps(tmp_path):
    for i in range(12):
        _touch(tmp_path / f"{i}.jpg")
    assert count_images(tmp_path, count_cap=5) == (5, True)
    for i in range(20):
        _touch(tmp_path / f"{i}.txt")
    assert count_images(tmp_path, walk_cap=10)[1] is True
    assert count_images(tmp_path / "missing") == (0, False)


def test_list_subfolders_sorted_visible_counted_and_limited(tmp_path):
    for name, n in (("dogs", 2), ("Cats", 3), ("empty", 0)):
        (tmp_path / name).mkdir()
        for i in range(n):
            _touch(tmp_path / name / f"{i}.jpg")
    (tmp_path / ".git").mkdir()
    (tmp_path / "__pycache__").mkdir()
    _touch(tmp_path / "file.jpg")
    subs = list_subfolders(tmp_path)
    assert [(s.name, s.images, s.capped) for s in subs] == [("Cats", 3, False), ("dogs", 2, False),
                                                            ("empty", 0, False)]  # fmt: skip
    assert subs[0].path == str(tmp_path / "Cats") and subs[0].images_label == "3"
    assert [s.name for s in list_subfolders(tmp_path, limit=2)] == ["Cats", "dogs"]
    assert list_subfolders(tmp_path / "missing") == []


def test_a_capped_count_reads_as_at_least(tmp_path):
    for i in range(1005):
        _touch(tmp_path / "big" / f"{i}.jpg")
    (sub,) = list_subfolders(tmp_path)
    assert (sub.images, sub.capped, sub.images_label) == (1000, True, "1000+")


def test_list_subfolders_keeps_inside_the_data_root(tmp_path, monkeypatch):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "inside").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "link_out")
    monkeypatch.setenv("BINCLS_DATA_ROOT", str(root))
    assert [s.name for s in list_subfolders(root)] == ["inside"]
    monkeypatch.delenv("BINCLS_DATA_ROOT")
    assert [s.name for s in list_subfolders(root)] == ["inside", "link_out"]


def test_fingerprint_changes_with_the_files_and_stamps_with_the_file(tmp_path):
    a = _touch(tmp_path / "cls" / "a.jpg")
    before = folder_fingerprint([str(tmp_path)])
    assert before == folder_fingerprint([str(tmp_path)])
    os.utime(tmp_path / "cls", ns=(0, 1))  # as if a file had been added a moment later
    assert folder_fingerprint([str(tmp_path)]) != before
    assert file_stamp(a) == os.stat(a).st_mtime_ns and file_stamp(tmp_path / "missing") == 0
