"""Webcam photos per class on the Data page (AppTest): each photo a new file in the uploads folder, a count,
undo of the last one, and "Use the uploaded images" makes them the data with the uploads beside them."""

from __future__ import annotations

import re
from pathlib import Path

import imagefactory as fac
from appsupport import button, data_page, shown
from streamlit.testing.v1 import AppTest

from bincls.data.images import load_rgb
from bincls.data.uploads import new_upload_session
from bincls.paths import SAMPLE_DATA, uploads_dir
from pages.support.shared import keys, memory


def photo(seed: int) -> tuple[str, bytes, str]:
    return ("image.jpg", fac.encode(fac.rgb_image(w=64, h=48, seed=seed), "JPEG"), "image/jpeg")


def camera(at: AppTest, letter: str):
    """The class's camera as it is now (a fresh widget after every photo)."""
    return next(c for c in at.camera_input if c.key.startswith(f"{keys.WEBCAM_CAMERA}upload_{letter}-"))


def take(at: AppTest, letter: str, seed: int) -> None:
    camera(at, letter).set_value(photo(seed))
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def counts(at: AppTest) -> list[str]:
    """The running count under each class's camera."""
    return [m.value for m in at.markdown if re.fullmatch(r"\*\*\d+\*\* webcam photos?", m.value)]


def errors(at: AppTest) -> str:
    return shown(" ".join(e.value for e in at.error))


def only_the_split_complains(at: AppTest) -> None:
    """A class of one or two photos is data; the split says they are too few to split (the page's rule)."""
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1 and "The train split would have no" in errors(at)


def photos_on_disk() -> list[Path]:
    return sorted(p for p in uploads_dir().rglob("*") if p.is_file())


def with_cameras(names=("cats", "dogs")) -> AppTest:
    at = data_page()
    for i, name in enumerate(names):
        at.text_input(key=keys.UPLOAD_NAMES[i]).input(name)
        at.toggle(key=keys.UPLOAD_CAMERA_ON[i]).set_value(True)
    at.run()
    assert not at.exception
    return at


def test_no_camera_until_asked_and_none_before_the_class_has_a_name():
    at = data_page()
    assert not at.camera_input  # the browser asks for the camera only once a toggle is on
    at.toggle(key=keys.UPLOAD_CAMERA_ON[0]).set_value(True)
    at.run()
    assert not at.camera_input and any("Name class A first" in i.value for i in at.info)
    assert photos_on_disk() == []


def test_photos_are_saved_counted_undone_and_used_as_the_data():
    at = with_cameras()
    assert len(at.camera_input) == 2 and counts(at) == ["**0** webcam photos"] * 2
    take(at, "A", 1)
    take(at, "A", 2)
    take(at, "A", 3)
    take(at, "B", 4)
    assert counts(at) == ["**3** webcam photos", "**1** webcam photo"]
    folder_a = Path(at.session_state[keys.UPLOAD_PHOTOS]) / "cats"
    assert [p.name for p in photos_on_disk() if p.parent == folder_a] == [
        "webcam-0001.jpg", "webcam-0002.jpg", "webcam-0003.jpg"]  # fmt: skip
    assert all(load_rgb(p).size == (64, 48) for p in photos_on_disk())

    undo_a = next(b for b in at.button if b.key == f"{keys.WEBCAM_CAMERA}upload_A-undo")
    undo_a.click()
    at.run()
    assert counts(at)[0] == "**2** webcam photos"
    assert [p.name for p in photos_on_disk() if p.parent == folder_a] == [
        "webcam-0001.jpg", "webcam-0002.jpg"]  # fmt: skip

    button(at, "Use the uploaded images").click()
    at.run()
    only_the_split_complains(at)
    paths = [Path(p) for p in at.session_state[keys.DATA_PATHS]]
    assert [p.name for p in paths] == ["cats", "dogs"]
    assert all(p.parent.parent == uploads_dir() for p in paths)
    assert {m.label: m.value for m in at.metric}["cats"] == "2 / 2"
    assert {m.label: m.value for m in at.metric}["dogs"] == "1 / 1"
    assert not folder_a.exists()  # the photos moved into the data's class folders, nothing left behind
    assert counts(at) == ["**0** webcam photos"] * 2  # the next photos start afresh


def test_photos_and_uploaded_files_make_one_class():
    at = with_cameras()
    take(at, "A", 1)
    take(at, "B", 2)
    uploads = [(f"dog{i}.png", fac.encode(fac.rgb_image(seed=10 + i), "PNG"), "image/png") for i in range(3)]
    at.file_uploader(key=f"{keys.UPLOAD_FILES[1]}-0").set_value(uploads)
    button(at, "Use the uploaded images").click()
    at.run()
    only_the_split_complains(at)
    dogs = Path(at.session_state[keys.DATA_PATHS][1])
    assert sorted(p.name for p in dogs.iterdir()) == ["dog0.png", "dog1.png", "dog2.png", "webcam-0001.jpg"]
    assert {m.label: m.value for m in at.metric}["dogs"] == "4 / 4"


def test_a_refused_upload_keeps_the_photos():
    at = with_cameras()
    take(at, "A", 1)
    take(at, "B", 2)
    bad = ("bad.zip", b"PK\x03\x04 not a zip", "application/zip")
    at.file_uploader(key=f"{keys.UPLOAD_FILES[1]}-0").set_value(bad)
    button(at, "Use the uploaded images").click()
    at.run()
    assert "bad.zip is not a readable zip" in errors(at)
    assert at.session_state[keys.DATA_PATHS] == [str(SAMPLE_DATA)]
    assert len(photos_on_disk()) == 2 and counts(at)[0] == "**1** webcam photo"


def test_one_class_of_photos_is_not_enough():
    at = with_cameras()
    take(at, "A", 1)
    button(at, "Use the uploaded images").click()
    at.run()
    assert "both classes" in errors(at)
    assert at.session_state[keys.DATA_PATHS] == [str(SAMPLE_DATA)]


def test_a_browser_finds_its_unused_photos_after_a_reload_and_only_inside_the_uploads(tmp_path):
    keep = memory.KEPT[keys.UPLOAD_PHOTOS]  # how the state file's value is read back after a reload
    session = new_upload_session()
    assert keep(str(session)) == str(session)
    for elsewhere in (str(tmp_path), str(uploads_dir()), str(session / "cats"), 42):
        assert keep(elsewhere) is None
