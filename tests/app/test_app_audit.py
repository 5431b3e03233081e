"""The Data page's label audit through AppTest: run it, review its rows, decide; files stay untouched."""

from __future__ import annotations

import hashlib

import pytest
from appsupport import button, data_page
from appsupport import shown as as_shown

from bincls.data.overlay import load_decisions, overlay_path
from bincls.paths import SAMPLE_DATA


def _digest(folder) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _decisions(at) -> list:
    return [s for s in at.segmented_control if s.label.startswith("Decision on ")]


@pytest.mark.slow
def test_audit_rows_are_reviewed_and_decisions_saved_beside_not_in_the_data(imagenet_hub):
    before = _digest(SAMPLE_DATA)
    data = [str(SAMPLE_DATA)]
    at = data_page()
    assert any("No decisions yet" in c.value for c in at.caption)
    button(at, "Run the label audit").click().run(timeout=300)
    assert not at.exception, [e.value for e in at.exception]
    summary = next(m.value for m in at.markdown if "worth a look" in m.value)
    assert not [b for b in at.button if b.label == "Run the label audit"], "done: no button above the rows"
    rows = _decisions(at)
    assert rows and summary.startswith(f"**{len(rows)} of 60 images are worth a look**")
    infos = [m.value for m in at.markdown if m.value.startswith(("**Likely wrong label**", "**Outlier**",
                                                                 "**Near-duplicate**"))]  # fmt: skip
    assert len(infos) == len(rows)
    for info, row in zip(infos, rows):  # relabel is offered for suspected labels only
        assert (row.options[-1].startswith("Relabel as")) == info.startswith("**Likely wrong label**")
        assert row.value is None

    first = rows[0]
    name = as_shown(first.label.removeprefix("Decision on "))  # the label escapes the name's markdown
    first.set_value("exclude").run()
    assert not at.exception, [e.value for e in at.exception]
    decided = load_decisions(data)
    assert list(decided.values()) == ["exclude"] and next(iter(decided)).endswith(name)
    shown = " ".join(i.value for i in at.info)
    assert "**1 decision in force**" in shown and "1 excluded" in shown
    assert "next training run" in shown and "never changed" in shown and str(overlay_path(data)) in shown

    again = data_page()  # a new session: the audit is cached, the decision comes from the overlay
    button(again, "Run the label audit").click().run()
    assert _decisions(again)[0].value == "exclude"
    button(again, "Forget all decisions").click().run()
    assert load_decisions(data) == {} and _decisions(again)[0].value is None
    assert _digest(SAMPLE_DATA) == before, "the user's files are never changed"


@pytest.mark.slow
def test_a_long_review_is_paged_and_decisions_on_later_pages_are_saved(hymenoptera, imagenet_hub):
    from pages.support.data.audit_review import ROWS_PER_PAGE
    from pages.support.shared.keys import AUDIT_PAGE, DATA_PATHS

    data = [str(hymenoptera)]
    at = data_page(**{DATA_PATHS: data})
    button(at, "Run the label audit").click().run(timeout=600)
    assert not at.exception, [e.value for e in at.exception]
    total = int(next(m.value for m in at.markdown if "worth a look" in m.value).split()[0].strip("*"))
    assert total > ROWS_PER_PAGE, "ants vs bees at about 90% out-of-sample accuracy: dozens to look at"
    pager = at.number_input(key=AUDIT_PAGE)
    assert pager.label == f"Page (of {-(-total // ROWS_PER_PAGE)})"
    first_page = [s.label for s in _decisions(at)]
    assert len(first_page) == ROWS_PER_PAGE
    pager.set_value(2).run()
    second_page = _decisions(at)
    assert second_page and not {s.label for s in second_page} & set(first_page)
    second_page[0].set_value("keep").run()
    assert list(load_decisions(data).values()) == ["keep"]
    assert any("0 excluded, 0 relabelled, 1 kept" in i.value for i in at.info)
