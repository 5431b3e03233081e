"""The pages get the engine's hardening for free (issue 16): a class folder linked out of the data root on
the Data page, a folder of FIFOs, sockets, devices, malformed files and links out on the Predict page, a
bad zip for the second class of an upload. Real files, real links, real special files; AppTest."""

from __future__ import annotations

import os
from pathlib import Path

import hostile
import imagefactory as fac
from appsupport import button, data_page, open_page, shown

from bincls.data.data_root import ENV
from bincls.paths import SAMPLE_DATA, uploads_dir
from pages.support.shared import keys as common

OUTSIDE = "leads outside the folder this app may read"


def errors(at) -> str:
    return shown(" ".join(e.value for e in at.error))


def test_a_class_folder_linked_out_of_the_root_is_refused_on_the_data_page(tmp_path, monkeypatch):
    root, secret = tmp_path / "served", tmp_path / "secret"
    fac.make_folder(root / "pets" / "cats", 3, seed=0)
    fac.make_folder(secret / "dogs", 3, seed=50)
    os.symlink(secret / "dogs", root / "pets" / "dogs")
    monkeypatch.setenv(ENV, str(root))
    at = data_page()
    at.text_input(key=common.DATA_ROOT_INPUT).input(str(root / "pets"))
    button(at, "Use this folder").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert OUTSIDE in errors(at) and "The data in use did not change" in errors(at)
    assert at.session_state[common.DATA_PATHS] == [str(SAMPLE_DATA)]


def test_the_predict_folder_tab_answers_for_every_hostile_file(sample_run, tmp_path, monkeypatch):
    root, secret = tmp_path / "served", tmp_path / "secret"
    folder = root / "photos"
    fac.make_folder(folder, 3, seed=0)
    fac.png(secret / "private.png", seed=9)
    device = hostile.char_device(folder / "zero.jpg")  # else a link to /dev/zero, leading outside the root
    device_reason = "a character device" if device else OUTSIDE
    expected = {
        str(hostile.fifo(folder / "z.jpg")): "a named pipe (FIFO), not a regular file",
        str(hostile.unix_socket(folder / "socket.jpg")): "a socket, not a regular file",
        str(device or hostile.link(folder / "zero.jpg", "/dev/zero")): device_reason,
        str(hostile.link(folder / "private.png", secret / "private.png")): OUTSIDE,
        str(fac.write_bytes(folder / "short.png", hostile.short_ihdr_png())): "truncated or corrupt",
        str(fac.write_bytes(folder / "small.ppm.jpg", hostile.bad_ppm())): "unsupported format (PPM)",
    }
    monkeypatch.setenv(ENV, str(root))
    at = open_page("predict")
    at.text_input(key=common.PREDICT_FOLDER_INPUT).set_value(str(folder))
    next(b for b in at.button if b.label == "Predict folder").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    problems = dict(zip(table["File"], table["Problem"]))
    assert len(problems) == 9
    for path, reason in expected.items():
        assert reason in problems[path], (path, problems[path])
    assert sum(1 for p in problems.values() if not p) == 3  # the good images are predicted


def test_a_bad_zip_for_the_second_class_keeps_nothing_on_the_data_page():
    at = data_page()
    at.text_input(key=common.UPLOAD_NAMES[0]).input("cats")
    at.text_input(key=common.UPLOAD_NAMES[1]).input("dogs")
    good = [(f"a{i}.png", fac.encode(fac.rgb_image(seed=i), "PNG"), "image/png") for i in range(3)]
    at.file_uploader(key=f"{common.UPLOAD_FILES[0]}-0").set_value(good)
    at.file_uploader(key=f"{common.UPLOAD_FILES[1]}-0").set_value(
        [("b.png", good[0][1], "image/png"), ("dogs.zip", b"PK\x03\x04 not really a zip", "application/zip")]
    )
    next(x for x in at.button if x.label == "Use the uploaded images").click()
    at.run()
    assert not at.exception
    assert "dogs.zip" in errors(at)
    assert at.session_state[common.DATA_PATHS] == [str(SAMPLE_DATA)]
    assert not [p for p in Path(uploads_dir()).rglob("*")], "the cats saved before the bad zip are gone too"
