"""Bulk decisions on the audit's rows (issue 22 item 5): which rows a threshold picks, the overlay they go
to, an undo that puts back exactly what was there; and the class a relabel on Evaluate gives."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from imagefactory import make_folder

from bincls.audit.bulk import BulkChange, apply_bulk, picked, undo_bulk
from bincls.audit.evaluated import decisions_dataset, filed_class, honoured_decisions, other_class
from bincls.audit.label_audit import AuditRow
from bincls.data.overlay import load_decisions, save_decisions
from bincls.errors import BinclsError


@pytest.fixture
def dataset(tmp_path) -> Path:
    make_folder(tmp_path / "data" / "ants", 8)
    make_folder(tmp_path / "data" / "bees", 8, seed=1000)
    return tmp_path / "data"


def _rows(root: Path) -> list[AuditRow]:
    a, b = sorted((root / "ants").iterdir()), sorted((root / "bees").iterdir())
    return [
        AuditRow(str(a[0]), "ants", "bees", 0.95, "label"),
        AuditRow(str(b[0]), "bees", "ants", 0.80, "label"),
        AuditRow(str(a[1]), "ants", "bees", 0.55, "label"),
        AuditRow(str(a[2]), "ants", "ants", 0.90, "outlier"),
        AuditRow(str(b[1]), "bees", "bees", 0.60, "outlier"),
        AuditRow(str(b[2]), "bees", "bees", 0.99, "near-duplicate"),  # never touched by a bulk action
    ]


def _digest(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_a_threshold_picks_the_rows_of_its_kind_at_or_above_it(dataset):
    rows = _rows(dataset)
    assert picked(rows, "relabel", 0.8) == [rows[0].path, rows[1].path], "0.80 itself is included"
    assert picked(rows, "relabel", 0.0) == [r.path for r in rows[:3]]
    assert picked(rows, "relabel", 0.96) == []
    assert picked(rows, "exclude", 0.6) == [rows[3].path, rows[4].path]
    assert picked(rows, "exclude", 0.95) == [], "a near-duplicate is no outlier"
    assert picked(rows + rows, "relabel", 0.9) == [rows[0].path], "each image once"
    with pytest.raises(BinclsError, match="Unknown bulk action 'keep'"):
        picked(rows, "keep", 0.5)


def test_images_already_decided_by_hand_are_left_as_they_are(dataset):
    rows = _rows(dataset)
    decided = {rows[0].path: "keep"}
    assert picked(rows, "relabel", 0.5, decided) == [rows[1].path, rows[2].path]
    data = [str(dataset)]
    save_decisions(data, decided)
    change = apply_bulk(data, rows, "relabel", 0.5)
    assert load_decisions(data) == {rows[0].path: "keep", rows[1].path: "relabel", rows[2].path: "relabel"}
    assert change.before == {rows[1].path: None, rows[2].path: None} and len(change) == 2


def test_a_bulk_action_and_its_undo_write_the_overlay_and_never_the_files(dataset):
    rows, data = _rows(dataset), [str(dataset)]
    before = _digest(dataset)
    save_decisions(data, {rows[5].path: "exclude"})  # a decision on another image, made by hand
    relabel = apply_bulk(data, rows, "relabel", 0.8)
    exclude = apply_bulk(data, rows, "exclude", 0.6)
    assert load_decisions(data) == {rows[5].path: "exclude", rows[0].path: "relabel", rows[1].path: "relabel",
                                    rows[3].path: "exclude", rows[4].path: "exclude"}  # fmt: skip
    assert undo_bulk(data, exclude) == 2
    assert load_decisions(data) == {rows[5].path: "exclude", rows[0].path: "relabel", rows[1].path: "relabel"}
    assert undo_bulk(data, relabel) == 2
    assert load_decisions(data) == {rows[5].path: "exclude"}, "exactly the decisions from before"
    assert _digest(dataset) == before


def test_undo_puts_back_earlier_decisions_and_keeps_later_ones_made_by_hand(dataset):
    rows, data = _rows(dataset), [str(dataset)]
    save_decisions(data, {rows[0].path: "relabel", rows[1].path: "relabel", rows[2].path: "relabel"})
    # A record of a change that replaced a keep (rows[0]) and decided two images that had nothing
    change = BulkChange("relabel", 0.5, {rows[0].path: "keep", rows[1].path: None, rows[2].path: None})
    save_decisions(data, {rows[2].path: "exclude"})  # changed by hand after the bulk action: the newer word
    assert undo_bulk(data, change) == 2
    assert load_decisions(data) == {rows[0].path: "keep", rows[2].path: "exclude"}


def test_nothing_above_the_threshold_writes_nothing(dataset):
    data = [str(dataset)]
    change = apply_bulk(data, _rows(dataset), "relabel", 0.99)
    assert len(change) == 0 and load_decisions(data) == {}
    assert undo_bulk(data, change) == 0


def test_the_evaluated_images_dataset_and_the_class_a_relabel_gives(tmp_path):
    names = ["ants", "bees"]
    assert decisions_dataset({"data": ["/d/root"]}) == ["/d/root"]
    assert decisions_dataset({"data": ["/d/root"]}, ["/other"]) == ["/other"], "the folders evaluated"
    assert decisions_dataset({}) == []
    run = tmp_path / "run"
    run.mkdir()
    assert honoured_decisions(run) == {}
    (run / "audit_decisions.json").write_text(json.dumps({str(tmp_path / "x.png"): "relabel"}))
    honoured = honoured_decisions(run)
    # The run trained x.png as bees after a relabel: it is filed under ants, and a relabel gives bees
    assert filed_class(str(tmp_path / "x.png"), "bees", names, honoured) == "ants"
    assert filed_class(str(tmp_path / "y.png"), "bees", names, honoured) == "bees"
    assert other_class("ants", names) == "bees" and other_class("bees", names) == "ants"
    (run / "audit_decisions.json").write_text("{not json")
    assert honoured_decisions(run) == {}, "a damaged record: the images count as shown"
