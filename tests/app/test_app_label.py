"""The Label page through AppTest, on the shipped sample as the pile (pixel features: the tests' torch hub
is empty): cards and metrics, every answer in the session's store at once (read back through the engine),
"Next batch" confirming what the cards show, undo, accepting the confident guesses and its undo, "Train on
these labels", and a bad folder in the form. The user's files are never changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from appsupport import button, open_page, shown
from PIL import Image

from bincls.data.dataset import load_data
from bincls.data.keyed_store import path_key
from bincls.data.labelled_csv import read_labelled_csv
from bincls.labeling import LabelingSession
from bincls.paths import SAMPLE_DATA
from pages.support.label import batch
from pages.support.shared import keys

SAMPLE_BUTTON = "Or try it on the bundled sample (ants and bees, mixed)"
METRICS = ["ants", "bees", "Skip / neither", "Not labelled", "Guess accuracy"]


@pytest.fixture(autouse=True)
def _fresh_sessions():
    """The page keeps one engine session per pile in `st.cache_resource`, for the server's life; each
    test has its own cache folder, so it must not get a session (and an answers store) of a test before."""
    from pages.support.label.session import _session

    _session.clear()
    yield
    _session.clear()


def _digest(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _sample_page():
    at = open_page("label")
    button(at, SAMPLE_BUTTON).click().run()
    _ok(at)
    return at


def _engine(folder=SAMPLE_DATA, classes=("ants", "bees")) -> LabelingSession:
    """The page's session opened apart: it reads the answers from the store in the cache folder."""
    return LabelingSession.open([str(folder)], classes)


def _stored(session: LabelingSession) -> dict[str, tuple[str, str]]:
    """{path key: (label, how)} as the store has them."""
    return {k: (e["label"], e["how"]) for k, e in session.entries().items()}


def _items(at) -> list[dict]:
    return at.session_state[keys.LABEL_BATCH]["items"]


def _cards(at):
    return [s for s in at.segmented_control if s.key and s.key.startswith(keys.LABEL_CARD)]


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_the_sample_opens_with_eight_cards_and_the_metrics_and_nothing_guessed_yet():
    before = _digest(SAMPLE_DATA)
    at = _sample_page()
    assert [m.label for m in at.metric][:5] == METRICS
    assert any(m.label.startswith("Confident guesses") for m in at.metric)
    assert _metric(at, "Not labelled") == "60" and _metric(at, "ants") == "0"
    cards = _cards(at)
    assert len(cards) == 8 == len(_items(at))
    assert all(c.options == ["ants", "bees", "skip", "neither"] for c in cards)
    assert all(c.value is None for c in cards), "no model yet: nothing pre-selected"
    assert sum("no guess yet" in m.value for m in at.markdown) == 8
    assert any("▶" in m.value for m in at.markdown), "the keyboard's card is marked"
    assert {b.label for b in at.button} >= {"ants", "bees", "skip", "neither", "Undo", "Next batch",
                                            "Train on these labels"}  # fmt: skip
    assert len({it["path"] for it in _items(at)}) == 8
    assert all(Path(it["path"]).is_relative_to(SAMPLE_DATA) for it in _items(at))
    assert _digest(SAMPLE_DATA) == before


def test_answers_are_stored_at_once_next_batch_confirms_the_cards_as_shown_undo_takes_back(monkeypatch):
    # The sample's pixel-feature guesses are 50-60% sure: pre-select every guess a model makes here (the
    # cut itself is tested below), as pretrained features do on real piles.
    monkeypatch.setattr(batch, "PRESELECT", 0.5000001)
    before = _digest(SAMPLE_DATA)
    at = _sample_page()
    items = _items(at)
    engine = _engine()
    # A click on a card answers that card.
    _cards(at)[0].set_value("ants").run()
    _ok(at)
    assert _stored(engine) == {path_key(items[0]["path"]): ("ants", "answer")}
    assert any("saved" in m.value and "ants" in m.value for m in at.markdown)
    assert _metric(at, "ants") == "1" and _metric(at, "Not labelled") == "59"
    # The class buttons (keys 1 / 2 / S / N) answer the card under the cursor: the next unanswered one.
    button(at, "bees").click().run()
    button(at, "skip").click().run()
    button(at, "neither").click().run()
    _ok(at)
    assert _stored(engine) == {
        path_key(items[0]["path"]): ("ants", "answer"), path_key(items[1]["path"]): ("bees", "answer"),
        path_key(items[2]["path"]): ("skip", "answer"), path_key(items[3]["path"]): ("neither", "answer"),
    }  # fmt: skip
    assert [c.value for c in _cards(at)][:4] == ["ants", "bees", "skip", "neither"]
    assert _metric(at, "Skip / neither") == "1 / 1"
    # Undo takes back the newest answer; the card is free again and the cursor back on it.
    button(at, "Undo").click().run()
    _ok(at)
    assert path_key(items[3]["path"]) not in engine.entries() and len(engine.entries()) == 3
    assert _cards(at)[3].value is None
    button(at, "ants").click().run()
    assert _stored(engine)[path_key(items[3]["path"])] == ("ants", "answer")

    # Next batch: the untouched cards of a batch with no guesses stay unlabelled (and may be asked again);
    # a new batch comes, without the answered ones.
    button(at, "Next batch").click().run()
    _ok(at)
    assert len(engine.entries()) == 4
    second = _items(at)
    assert len(second) == 8 and not {it["path"] for it in second} & {it["path"] for it in items[:4]}
    # Now there is a model (both classes answered): every card shows its guess, pre-selected.
    shown_values = [c.value for c in _cards(at)]
    assert shown_values == [it["guess"] for it in second] and all(v in ("ants", "bees") for v in shown_values)
    _cards(at)[5].set_value("neither").run()  # one changed by hand; the rest confirmed as shown
    shown_values[5] = "neither"
    # A click on the pre-selected guess (the control un-chooses it) confirms it; on an answer, takes it back.
    _cards(at)[6].set_value(None).run()
    _ok(at)
    assert _stored(engine)[path_key(second[6]["path"])] == (second[6]["guess"], "answer")
    assert _cards(at)[6].value == second[6]["guess"]
    _cards(at)[5].set_value(None).run()
    assert path_key(second[5]["path"]) not in engine.entries() and _cards(at)[5].value is None
    _cards(at)[5].set_value("neither").run()
    button(at, "Next batch").click().run()
    _ok(at)
    stored = _stored(engine)
    for it, value in zip(second, shown_values):
        assert stored[path_key(it["path"])] == (value, "answer")
    assert len(stored) == 12 and _metric(at, "Not labelled") == "48"
    # Undo after a batch takes back its last confirmed card.
    button(at, "Undo").click().run()
    assert path_key(second[-1]["path"]) not in engine.entries() and len(engine.entries()) == 11
    assert _digest(SAMPLE_DATA) == before, "the pile's files are never changed"


def test_a_guess_less_sure_than_the_cut_is_shown_but_not_pre_selected():
    at = _sample_page()
    items = _items(at)
    assert all(c.value is None for c in _cards(at)), "no model yet: nothing pre-selected"
    _cards(at)[0].set_value("ants" if "/ants/" in items[0]["path"] else "bees").run()
    first_is_ant = "/ants/" in items[0]["path"]
    other = next(i for i, it in enumerate(items) if ("/ants/" in it["path"]) != first_is_ant)
    _cards(at)[other].set_value("ants" if "/ants/" in items[other]["path"] else "bees").run()
    button(at, "Next batch").click().run()
    _ok(at)
    second = _items(at)
    for card, it in zip(_cards(at), second):
        assert card.value == (it["guess"] if it["p"] >= batch.PRESELECT else None), it
    unsure = [it for it in second if it["p"] < batch.PRESELECT]
    assert len(unsure) == sum("· unsure" in m.value for m in at.markdown)


def test_train_on_these_labels_makes_the_csv_the_dataset_with_the_two_classes():
    at = _sample_page()
    items = _items(at)
    answers = {it["path"]: ("ants", "bees")[i % 2] for i, it in enumerate(items[:6])}
    for card, label in zip(_cards(at), answers.values()):
        card.set_value(label).run()
    _cards(at)[6].set_value("skip").run()  # skip and neither are not labels: not in the CSV
    _ok(at)
    assert any(b.label == "Download the 6 labels (CSV)" for b in at.get("download_button"))
    button(at, "Train on these labels").click().run()
    _ok(at)
    engine = _engine()
    csv = engine.labels_file()
    assert at.session_state[keys.DATA_PATHS] == [str(csv)]
    assert csv.is_file() and not csv.is_relative_to(SAMPLE_DATA), "written in bincls' cache folder"
    rows = read_labelled_csv(csv)
    assert sorted(rows.rows) == sorted(answers.items()) and not rows.bad
    assert load_data([str(csv)]).class_names == ["ants", "bees"]
    assert at.title[0].value == "Train"
    dataset = shown(next(m.value for m in at.markdown if m.value.startswith(":material/folder_open:")))
    assert f"**{csv.name}** · ants vs bees · 2 train / 2 val / 2 test images" in dataset, dataset


def _colour_pile(root: Path, n: int = 40) -> Path:
    """Reds and blues with noise: pixel features tell them apart for sure, so a few answers give confident
    guesses (the sample's ants and bees, seen as pixels, never get there)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        base = np.array([200, 40, 40] if i % 2 == 0 else [40, 60, 200], np.int16)
        pixels = np.clip(base + rng.integers(-40, 40, (48, 48, 3)), 0, 255).astype(np.uint8)
        path = root / ("reds" if i % 2 == 0 else "blues") / f"photo{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return root


def _open_form(at, folders: str, a: str, b: str):
    at.text_area(key=keys.LABEL_PILE_INPUT).input(folders)
    at.text_input(key=keys.LABEL_CLASS_INPUTS[0]).input(a)
    at.text_input(key=keys.LABEL_CLASS_INPUTS[1]).input(b)
    button(at, "Open the pile").click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_accept_the_confident_guesses_and_undo_accepting(tmp_path):
    pile = _colour_pile(tmp_path / "pile")
    before = _digest(pile)
    at = open_page("label")
    _open_form(at, str(pile), "red", "blue")
    _ok(at)
    engine = _engine(pile, ("red", "blue"))
    for card, it in zip(_cards(at), _items(at)):
        card.set_value(Path(it["path"]).parent.name[:-1]).run()  # reds/ -> red
    _ok(at)
    button(at, "Next batch").click().run()
    answered = _stored(engine)
    assert len(answered) == 8
    accept = next(b for b in at.button if b.label.startswith("Accept the "))
    confident = int(accept.label.split()[2])
    assert confident > 0 and not accept.disabled
    accept.click().run()
    _ok(at)
    stored = _stored(engine)
    accepted = {k: v for k, v in stored.items() if v[1] == "accepted"}
    assert len(accepted) == confident and {k: v for k, v in stored.items() if v[1] == "answer"} == answered
    by_key = dict(zip(engine.pile.keys, engine.pile.paths))
    assert all(label == Path(by_key[k]).parent.name[:-1] for k, (label, _) in accepted.items())
    assert any(f"Accepted {confident:,} confident guesses" in s.value for s in at.success)
    assert "accepted" in _metric(at, "red") or "accepted" in _metric(at, "blue")

    button(at, "Undo accepting").click().run()
    _ok(at)
    assert _stored(engine) == answered, "the accepted guesses are taken back, the answers stay"
    assert not any(b.label == "Undo accepting" for b in at.button)
    assert _digest(pile) == before


@pytest.mark.parametrize(
    ("folders", "classes", "says"),
    [
        ("{missing}", ("cats", "dogs"), "{missing}"),
        ("{file}", ("cats", "dogs"), "{file}"),
        ("{empty}", ("cats", "dogs"), ""),
        ("{empty}", ("cats", "Cats"), "different names"),
        ("", ("cats", "dogs"), "Give the pile's folder(s) and both class names."),
    ],
)
def test_a_bad_pile_or_classes_in_the_form_say_what_is_wrong_and_nothing_crashes(tmp_path, folders, classes,
                                                                                 says):  # fmt: skip
    places = {"missing": str(tmp_path / "no such folder"), "file": str(tmp_path / "a.txt"),
              "empty": str(tmp_path / "empty")}  # fmt: skip
    (tmp_path / "a.txt").write_text("not a folder")
    (tmp_path / "empty").mkdir()
    at = open_page("label")
    _open_form(at, folders.format(**places), *classes)
    errors = " ".join(shown(e.value) for e in at.error)
    assert errors and says.format(**places) in errors, errors
    assert not _cards(at) and not at.metric
    assert button(at, "Open the pile") is not None, "the form stays, to try again"


def test_points_selected_on_the_map_are_shown_and_labelled_in_one_click():
    """The chart's lasso / box selection as Streamlit hands it to the page (the browser test drags a box)."""
    at = _sample_page()
    chosen = [it["path"] for it in _items(at)[:3]]
    selection = {"points": [{"customdata": p} for p in chosen], "point_indices": [], "box": [], "lasso": []}
    at.session_state[keys.LABEL_MAP] = {"selection": selection}
    at.run()
    _ok(at)
    assert any(m.value == "**3 images selected**" for m in at.markdown)
    button(at, "All 3 are bees").click().run()
    _ok(at)
    assert _stored(_engine()) == {path_key(p): ("bees", "answer") for p in chosen}
    assert any("Labelled 3 images bees." in s.value for s in at.success)
    assert _metric(at, "bees") == "3" and _metric(at, "Not labelled") == "57"
    assert not {it["path"] for it in _items(at)} & set(chosen), "the next cards know of these"
    button(at, "Undo").click().run()  # the map's answers go on the same undo stack
    assert len(_engine().entries()) == 2


def test_a_card_answered_in_another_tab_shows_that_answer_at_the_next_rerun():
    first, second = _sample_page(), _sample_page()  # two app sessions on the same pile: the same batch
    assert [it["path"] for it in _items(first)] == [it["path"] for it in _items(second)]
    _cards(first)[0].set_value("bees").run()
    _cards(second)[1].set_value("ants").run()
    _ok(second)
    assert [c.value for c in _cards(second)][:2] == ["bees", "ants"]
    first.run()
    assert [c.value for c in _cards(first)][:2] == ["bees", "ants"]
    assert sum("saved" in m.value for m in first.markdown) == 2
