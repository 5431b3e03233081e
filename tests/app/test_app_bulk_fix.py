"""Fixing labels in bulk where they are found (issue 22 item 5), through AppTest: the audit review's bulk
relabel / exclude with their undo, and Evaluate's relabel / exclude / undo buttons, all writing the
dataset's overlay and never the user's files."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import test_app_names
from appsupport import button, data_page, open_page, shown

from bincls.data.overlay import load_decisions, save_decisions
from bincls.paths import SAMPLE_DATA
from pages.support.shared import keys
from pages.support.shared.formatting import md
from pages.support.shared.keys import AUDIT_BULK, EVAL_CELL

# A run on a class folder named like markdown, as the names test makes it (its fixtures, reused here)
hostile_src, hostile = test_app_names.hostile_src, test_app_names.hostile
ROW_INFO = re.compile(r"^\*\*(Likely wrong label|Outlier|Near-duplicate)\*\* · score (\d\.\d\d)")


def _digest(folder) -> dict[str, str]:
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _rows(at) -> list[tuple[str, str, str]]:
    """(kind, score, path) of every reviewed row as the page shows it."""
    infos = [m for m in at.markdown if ROW_INFO.match(m.value)]
    paths = [shown(c.help.split("\n\n")[0]) for c in at.caption if c.help and "\n\n" in c.help]
    assert len(infos) == len(paths) and all(Path(p).is_file() for p in paths)
    return [(*ROW_INFO.match(i.value).groups(), p) for i, p in zip(infos, paths)]


def _caption(at, start: str) -> str:
    return next(c.value for c in at.caption if c.value.startswith(start))


@pytest.mark.slow
def test_bulk_relabel_and_exclude_write_the_overlay_and_undo_puts_back_what_was_there(imagenet_hub):
    before = _digest(SAMPLE_DATA)
    data = [str(SAMPLE_DATA)]
    at = data_page()
    button(at, "Run the label audit").click().run(timeout=300)
    assert not at.exception, [e.value for e in at.exception]
    rows = _rows(at)
    labels = [(float(s), p) for k, s, p in rows if k == "Likely wrong label"]
    outliers = [(float(s), p) for k, s, p in rows if k == "Outlier"]
    assert labels and outliers, "the sample has both (two likely wrong labels and one outlier)"
    assert any(m.value == "**Decide many at once**" for m in at.markdown)

    # A decision by hand first: the bulk action leaves it alone
    low = round(min(s for s, _ in labels) - 0.01, 2)  # under every score shown (they are rounded)
    hand = labels[0][1]
    save_decisions(data, {hand: "keep"})
    at.number_input(key=AUDIT_BULK + "relabel").set_value(low).run()
    todo = [p for s, p in labels if s >= low and p != hand]
    assert _caption(at, "Would relabel").startswith(f"Would relabel **{len(todo)} image")
    assert "1 already decided: left as it is" in _caption(at, "Would relabel")
    at.number_input(key=AUDIT_BULK + "relabel").set_value(1.0).run()
    assert _caption(at, "Would relabel") == "Would relabel **0 images**."
    assert button(at, "Relabel 0 images").disabled

    at.number_input(key=AUDIT_BULK + "relabel").set_value(low).run()
    button(at, f"Relabel {len(todo)} image{'s' if len(todo) != 1 else ''}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert load_decisions(data) == {hand: "keep", **dict.fromkeys(todo, "relabel")}
    assert any("relabelled (score ≥" in s.value for s in at.success)
    decided = {s.label: s.value for s in at.segmented_control if s.label.startswith("Decision on ")}
    assert sorted(decided.values(), key=str).count("relabel") == len(todo), "the rows show the bulk decision"

    at.number_input(key=AUDIT_BULK + "exclude").set_value(round(min(s for s, _ in outliers) - 0.01, 2)).run()
    button(at, f"Exclude {len(outliers)} image{'s' if len(outliers) != 1 else ''}").click().run()
    assert load_decisions(data) == {hand: "keep", **dict.fromkeys(todo, "relabel"),
                                    **dict.fromkeys([p for _, p in outliers], "exclude")}  # fmt: skip
    undo = next(b for b in at.button if b.label.startswith("Undo: "))
    assert undo.label.startswith(f"Undo: {len(outliers)} image") and "excluded" in undo.label
    undo.click().run()
    assert load_decisions(data) == {hand: "keep", **dict.fromkeys(todo, "relabel")}, "only the last one"
    assert not [b for b in at.button if b.label.startswith("Undo: ")], "one undo: the last bulk action"
    assert any(s.value.startswith(f"Undone: {len(outliers)} image") for s in at.success)
    assert _digest(SAMPLE_DATA) == before, "the user's files are never changed"


def test_evaluate_relabels_and_excludes_an_image_in_the_runs_dataset_overlay(sample_run):
    before = _digest(SAMPLE_DATA)
    data = sample_run.config()["data"]
    at = open_page("evaluate")
    z = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["z"]
    names = ["ants", "bees"]
    true, said = next((t, p) for t, p in ((0, 1), (1, 0), (0, 0), (1, 1)) if z[t][p])  # a wrong cell first
    at.session_state[EVAL_CELL] = (names[true], names[said])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    notes = [c.value for c in at.caption if "next training run" in c.value]
    assert notes and "never changed" in notes[0] and "0 decisions in force" in notes[0]
    other = names[1 - true]
    next(b for b in at.button if b.label == f"Relabel to {other}").click().run()  # the cell's first card
    assert not at.exception, [e.value for e in at.exception]
    decided = load_decisions(data)
    assert list(decided.values()) == ["relabel"]
    path = next(iter(decided))
    assert Path(path).parent.name == names[true], f"an image of the cell true {names[true]}"
    assert any(m.value.startswith(f"Relabelled to **{other}**") for m in at.markdown)

    undo = next(b for b in at.button if b.label == "Undo")
    undo.click().run()
    assert load_decisions(data) == {}
    next(b for b in at.button if b.label == "Exclude").click().run()
    assert list(load_decisions(data).values()) == ["exclude"]
    assert _digest(SAMPLE_DATA) == before, "the user's files are never changed"


def test_evaluate_buttons_show_a_class_named_like_markdown_as_text(hostile):
    from test_app_names import CLASS, assert_names_are_text

    root, run_id = hostile
    state = {keys.DATA_PATHS: [str(root)], keys.CURRENT_RUN: run_id}
    at = open_page("evaluate", state=state)
    z = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["z"]
    names = sorted([CLASS, "bees"])  # the run's classes, in the scan's order
    said = next(p for p in range(2) if z[names.index("bees")][p])
    at.session_state[keys.EVAL_CELL] = ("bees", names[said])
    at.run()
    assert_names_are_text(at, CLASS)
    next(b for b in at.button if b.label == f"Relabel to {md(CLASS)}").click().run()
    assert_names_are_text(at, CLASS)
    decided = load_decisions([str(root)])
    assert list(decided.values()) == ["relabel"] and Path(next(iter(decided))).parent.name == "bees"
    assert any(m.value.startswith(f"Relabelled to **{md(CLASS)}**") for m in at.markdown)
