"""`bincls serve --collect DIR` (issue 22, item 7): the images the model was unsure about (near the threshold
or unlike the training images) are kept in DIR with their answers, at most N, oldest first out, written
atomically by a thread of their own; DIR is a pile of images plus collected.csv, and nothing bincls did
not put there is ever deleted."""

from __future__ import annotations

import csv
import os

import pytest
from fastapi.testclient import TestClient

from bincls import BinclsError
from bincls.cli import main
from bincls.inference.onnx_predict import OnnxPredictor
from bincls.paths import SAMPLE_DATA
from bincls.serve import collect as collect_module
from bincls.serve.app import create_app
from bincls.serve.collect import COLUMNS, NAME, SIDECAR, Collector, read_collected


@pytest.fixture(scope="module")
def model(exported_sample_run) -> OnnxPredictor:
    return OnnxPredictor(exported_sample_run / "best.onnx")


def photos(n: int) -> list[tuple[str, bytes]]:
    return [(f.name, f.read_bytes()) for f in sorted((SAMPLE_DATA / "bees").iterdir())[:n]]


def test_the_server_keeps_what_it_was_unsure_about_oldest_first_out(model, tmp_path):
    pile = tmp_path / "pile"
    collector = Collector(pile, max_items=3, margin=0.1, model_sha256=model.sha256)
    sent = photos(5)
    with TestClient(create_app(model, collector=collector), base_url="http://localhost") as client:
        answers = [client.post("/predict", files={"files": item}).json()[0] for item in sent]
    collector.close()
    assert all(abs(a["p_class1"] - 0.5) < 0.1 for a in answers), "this 1-epoch model is unsure of everything"
    rows = read_collected(pile)
    assert [r["uploaded_as"] for r in rows] == [name for name, _ in sent[2:]], "the 3 newest, oldest first"
    on_disk = sorted(p.name for p in pile.iterdir())
    assert on_disk == sorted([SIDECAR, *(r["file"] for r in rows)]), "no temporary or evicted file left"
    for row, (_, data), answer in zip(rows, sent[2:], answers[2:]):
        assert NAME.fullmatch(row["file"]) and row["file"].endswith(".jpg")
        assert (pile / row["file"]).read_bytes() == data, "the image as the client sent it"
        assert row["class_name"] == answer["class_name"] and float(row["p_class1"]) == answer["p_class1"]
        assert row["why"] == "near the threshold" and float(row["threshold"]) == 0.5
        assert row["model_sha256"] == model.sha256 and row["time"].endswith("+00:00")
    with open(pile / SIDECAR, newline="", encoding="utf-8") as f:
        assert csv.DictReader(f).fieldnames == COLUMNS
    assert collector.kept == 5 and collector.dropped == 0 and collector.failed == 0


def test_only_answers_near_the_threshold_or_unlike_the_training_images_are_kept(tmp_path):
    collector = Collector(tmp_path / "pile", margin=0.1)
    try:
        near, far = {"p_class1": 0.55, "ood": False}, {"p_class1": 0.95, "ood": None}
        assert collector.why(near, 0.5) == "near the threshold" and collector.why(far, 0.5) is None
        assert collector.why({"p_class1": 0.95, "ood": True}, 0.5) == "unlike the training images"
        both = collector.why({"p_class1": 0.52, "ood": True}, 0.5)
        assert both == "near the threshold; unlike the training images"
    finally:
        collector.close()


def test_the_folder_must_be_bincls_own_and_one_server_at_a_time(model, tmp_path, capsys):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"a user's photo")
    with pytest.raises(BinclsError, match="did not collect"):
        Collector(mine)
    with pytest.raises(BinclsError, match="is a file"):
        Collector(mine / "holiday.jpg")
    assert main(["serve", str(model.path), "--collect", str(mine)]) == 2
    assert "did not collect" in capsys.readouterr().err
    pile = tmp_path / "pile"
    first = Collector(pile, max_items=2, margin=0.5)
    with pytest.raises(BinclsError, match="Another bincls serve collects into"):
        Collector(pile)
    with TestClient(create_app(model, collector=first), base_url="http://localhost") as client:
        for item in photos(2):
            client.post("/predict", files={"files": item})
    first.close()
    (pile / "mine.jpg").write_bytes(b"added by the user afterwards")
    again = Collector(pile, max_items=2, margin=0.5)  # a restarted server goes on where it stopped
    assert len(again.rows) == 2
    with TestClient(create_app(model, collector=again), base_url="http://localhost") as client:
        for item in photos(4)[2:]:
            client.post("/predict", files={"files": item})
    again.close()
    assert [r["uploaded_as"] for r in read_collected(pile)] == [name for name, _ in photos(4)[2:]]
    assert (pile / "mine.jpg").read_bytes() == b"added by the user afterwards", "never deleted"
    assert len([p for p in pile.iterdir() if NAME.fullmatch(p.name)]) == 2


def test_keeping_never_holds_up_an_answer(model, tmp_path, monkeypatch):
    """The disk work is the writer thread's: with no room in its queue an image is dropped and counted."""
    monkeypatch.setattr(collect_module, "QUEUE_BYTES", 10)
    collector = Collector(tmp_path / "pile", margin=0.5)
    with TestClient(create_app(model, collector=collector), base_url="http://localhost") as client:
        resp = client.post("/predict", files={"files": photos(1)[0]})
    collector.close()
    assert resp.status_code == 200 and collector.dropped == 1 and read_collected(tmp_path / "pile") == []


def test_a_tampered_table_never_makes_the_server_delete_other_files(model, tmp_path):
    pile = tmp_path / "pile"
    pile.mkdir()
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    rows = [{"file": os.path.relpath(victim, pile), "uploaded_as": "x"},
            {"file": "notes.txt", "uploaded_as": "y"}]  # fmt: skip
    with open(pile / SIDECAR, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (pile / "notes.txt").write_text("not bincls's")
    collector = Collector(pile, max_items=1, margin=0.5)
    assert collector.rows == []
    with TestClient(create_app(model, collector=collector), base_url="http://localhost") as client:
        for item in photos(2):
            client.post("/predict", files={"files": item})
    collector.close()
    assert victim.read_text() == "keep me" and (pile / "notes.txt").is_file()
    assert len(read_collected(pile)) == 1
