"""Offline, with an empty torch cache (issue 23, item 1): the Data page's label audit and the Train page name
the folder and the file torchvision looks for, and take a weights file the user picks, whatever its name
(a path or an upload): checked to be that architecture, copied into bincls' cache, the user's file untouched.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest
from appsupport import button, data_page, open_page, shown

from bincls.models.weights import hub_checkpoints, own_weights_file
from pages.support.shared import keys
from pages.support.shared.keys import TRAIN_KEYS

FILE = "mobilenet_v2-7ebf99e0.pth"  # torchvision's DEFAULT ImageNet file for mobilenet_v2


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setattr("bincls.models.weights.download_reachable", lambda timeout=2.0: False)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _says_where(texts: list[str]) -> bool:
    """Some text names torchvision's file and the hub folder it belongs in."""
    return any(FILE in t and str(hub_checkpoints()) in t for t in map(shown, texts))


def test_without_weights_the_audit_names_the_folder_and_the_file_and_offers_to_take_one():
    at = data_page()
    assert any("no ImageNet weights here" in w.value for w in at.warning)
    assert _says_where([m.value for m in at.markdown])
    assert not [b for b in at.button if b.label == "Run the label audit"], "it could only fail"
    assert at.text_input(key=keys.WEIGHTS_PATH + "audit") is not None
    assert at.file_uploader(key=keys.WEIGHTS_UPLOAD + "audit") is not None, "an upload beside the path"


def test_a_weights_file_under_any_name_given_by_path_makes_the_audit_possible(mobilenet_weights, tmp_path):
    mine = tmp_path / "downloads" / "the net (1).bin"  # any name, any folder: the user's
    mine.parent.mkdir()
    shutil.copy(mobilenet_weights, mine)
    before = (_digest(mine), sorted(p.name for p in mine.parent.iterdir()))
    at = data_page()
    at.text_input(key=keys.WEIGHTS_PATH + "audit").set_value(str(mine))
    button(at, "Use this weights file").click().run()
    assert not at.exception, [e.value for e in at.exception]
    said = " ".join(shown(s.value) for s in at.success)
    assert "holds mobilenet_v2 weights" in said and str(own_weights_file("mobilenet_v2")) in said
    assert _digest(own_weights_file("mobilenet_v2")) == before[0]
    assert (_digest(mine), sorted(p.name for p in mine.parent.iterdir())) == before, "only read"
    assert button(at, "Run the label audit"), "the audit has its network now"


def test_a_file_of_another_kind_is_refused_and_nothing_is_kept(tmp_path):
    import torch

    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(8, 3, 3, 3)}, other)
    at = data_page()
    at.text_input(key=keys.WEIGHTS_PATH + "audit").set_value(str(other))
    button(at, "Use this weights file").click().run()
    assert any("fit none" in shown(e.value) for e in at.error)
    assert not own_weights_file("mobilenet_v2").exists()


def test_an_uploaded_weights_file_is_taken_on_the_train_page(mobilenet_weights):
    at = open_page("train")
    # No weights: Auto trains from scratch, and the page says where the file goes and takes one.
    assert at.selectbox(key=TRAIN_KEYS["model"]).value == "small-cnn"
    assert _says_where([m.value for m in at.markdown])
    upload = ("weights from a colleague.pt", mobilenet_weights.read_bytes(), "application/octet-stream")
    at.file_uploader(key=keys.WEIGHTS_UPLOAD + "train").set_value(upload)
    button(at, "Use this weights file").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("holds mobilenet_v2 weights" in shown(s.value) for s in at.success)
    at.run()
    assert any("Auto chose **fast**" in i.value for i in at.info), [i.value for i in at.info]
    assert at.selectbox(key=TRAIN_KEYS["model"]).value == "mobilenet_v2"
    assert not list(own_weights_file("mobilenet_v2").parent.glob(".upload-*")), "no temp file is left"


def test_a_file_put_in_the_hub_folder_under_another_name_is_found(mobilenet_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub_checkpoints().mkdir(parents=True)
    shutil.copy(mobilenet_weights, hub_checkpoints() / "mobilenetv2_imagenet.pth")
    at = open_page("train")
    assert any("Auto chose **fast**" in i.value and "mobilenetv2_imagenet.pth" in shown(i.value)
               for i in at.info), [i.value for i in at.info]  # fmt: skip
