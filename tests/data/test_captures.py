"""Webcam photos: one new decodable file per photo in an uploads class folder; undo takes back only that."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from imagefactory import encode, rgb_image

from bincls import BinclsError
from bincls.data.captures import captures_in, count_captures, move_captures, save_capture, undo_capture
from bincls.data.folder_layout import resolve_layout
from bincls.data.images import load_rgb
from bincls.data.scan import scan_layout
from bincls.data.uploads import new_upload_session
from bincls.paths import uploads_dir

JPEG = encode(rgb_image(w=64, h=48, seed=1), "JPEG")
PNG = encode(rgb_image(w=64, h=48, seed=2), "PNG")


@pytest.fixture
def folder() -> Path:
    return new_upload_session() / "cats"


def test_photos_are_numbered_new_files_that_decode(folder):
    first, second, third = save_capture(folder, JPEG), save_capture(folder, PNG), save_capture(folder, JPEG)
    assert [c.path.name for c in (first, second, third)] == ["webcam-0001.jpg", "webcam-0002.png",
                                                             "webcam-0003.jpg"]  # fmt: skip
    assert first.path.read_bytes() == JPEG and second.path.read_bytes() == PNG
    assert all(load_rgb(c.path).size == (64, 48) for c in (first, second, third))
    assert captures_in(folder) == [first.path, second.path, third.path] and count_captures(folder) == 3
    assert sorted(os.listdir(folder)) == ["webcam-0001.jpg", "webcam-0002.png", "webcam-0003.jpg"]  # no temp


def test_numbers_continue_after_the_highest_and_never_replace_a_file(folder):
    folder.mkdir(parents=True)
    (folder / "webcam-0009.jpg").write_bytes(JPEG)
    (folder / "my-upload.jpg").write_bytes(b"an uploaded file, not a photo bincls took")
    saved = save_capture(folder, PNG)
    assert saved.path.name == "webcam-0010.png"
    assert (folder / "my-upload.jpg").read_bytes().startswith(b"an uploaded")
    assert count_captures(folder) == 2


def test_two_tabs_saving_at_once_each_get_their_own_file(folder):
    saved = []
    threads = [threading.Thread(target=lambda: saved.append(save_capture(folder, JPEG))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({c.path for c in saved}) == 8 and count_captures(folder) == 8


@pytest.mark.parametrize("data, reason", [
    (b"", "does not decode"),
    (b"not an image at all", "does not decode"),
    (JPEG[: len(JPEG) // 2], "does not decode"),
    (encode(rgb_image(seed=3), "BMP"), "not a JPEG or PNG"),
])  # fmt: skip
def test_a_photo_that_does_not_decode_is_refused_and_nothing_is_written(folder, data, reason):
    with pytest.raises(BinclsError, match=reason):
        save_capture(folder, data)
    assert not any(p.is_file() for p in uploads_dir().rglob("*"))


def test_photos_never_go_outside_a_class_folder_of_the_uploads(tmp_path):
    users = tmp_path / "my-photos"
    users.mkdir()
    for where in (users, uploads_dir(), uploads_dir() / ".." / "elsewhere" / "cats"):
        with pytest.raises(BinclsError, match="uploads folder"):
            save_capture(where, JPEG)
    assert list(users.iterdir()) == []


def test_undo_deletes_only_the_photo_bincls_saved(folder, tmp_path):
    first, second = save_capture(folder, JPEG), save_capture(folder, PNG)
    assert undo_capture(second) and not second.path.exists() and first.path.exists()
    assert not undo_capture(second)  # gone already: nothing else is touched
    first.path.write_bytes(PNG)  # the file under that name is no longer what bincls wrote
    assert not undo_capture(first) and first.path.read_bytes() == PNG
    mine = tmp_path / "webcam-0001.jpg"
    mine.write_bytes(JPEG)
    assert not undo_capture(type(first)(mine, first.sha256)) and mine.exists()  # a user's file: never


def test_a_photo_folder_is_a_class_to_the_scan(folder):
    other = folder.parent / "dogs"
    for i in range(3):
        save_capture(folder, encode(rgb_image(w=40, h=30, seed=10 + i), "JPEG"))
        save_capture(other, encode(rgb_image(w=40, h=30, seed=20 + i), "PNG"))
    scan = scan_layout(resolve_layout([folder, other]))
    assert scan.class_names == ["cats", "dogs"] and scan.class_counts() == [3, 3] and not scan.skipped


def test_photos_move_into_another_class_folder_after_what_is_there(folder):
    save_capture(folder, JPEG), save_capture(folder, PNG)
    dest = new_upload_session() / "cats"
    dest.mkdir()
    (dest / "webcam-0001.jpg").write_bytes(JPEG)
    moved = move_captures(folder, dest)
    assert [p.name for p in moved] == ["webcam-0002.jpg", "webcam-0003.png"]
    assert not folder.exists() and count_captures(dest) == 3
