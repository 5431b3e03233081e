"""The labelling session end to end on the shipped sample (pixel features: the tests' torch hub is empty),
its answers store, determinism, and the user's folders left byte-identical."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from imagefactory import jpeg, make_folder, text_file, truncated_jpeg

from bincls.data.dataset import load_data
from bincls.errors import BinclsError
from bincls.labeling import LabelingSession, find_pile


def digest(folder: Path) -> dict[str, str]:
    """Every file's bytes and every name below `folder`: a session must change none of them."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}  # fmt: skip


def truth(path: str) -> str:
    return Path(path).parent.name  # the sample keeps ants and bees in folders of those names


@pytest.fixture
def pile(sample_dir, tmp_path) -> Path:
    """A copy of the sample (60 photos in ants/ and bees/): a pile whose truth the oracle reads from the
    folder names, which the session itself never looks at."""
    return Path(shutil.copytree(sample_dir, tmp_path / "pile"))


def oracle_rounds(session: LabelingSession, rounds: int, k: int = 10) -> list:
    asked = []
    for _ in range(rounds):
        batch = session.suggest(k)
        asked += batch
        session.answer_many({s.path: truth(s.path) for s in batch})
    return asked


def test_a_whole_session_without_pretrained_weights_leaves_the_folders_alone(pile, tmp_path):
    before = digest(pile)
    session = LabelingSession.open([pile], ("ants", "bees"))
    assert not session.extractor.pretrained and len(session.pile.paths) == 60
    first = session.suggest(10)
    assert len(first) == 10 and {s.why for s in first} == {"diverse"} and len({s.path for s in first}) == 10
    assert all(s.guess in ("ants", "bees") and s.p == 0.5 for s in first)  # no model yet: no claim
    asked = oracle_rounds(session, 4)
    assert len({s.path for s in asked}) == 40  # never the same image twice
    status = session.status().to_dict()
    assert status["answered"]["ants"] + status["answered"]["bees"] == 40 and status["unlabelled"] == 20
    assert "no pretrained weights" in " ".join(status["notes"])
    est = status["estimate"]
    assert est["answered"] == 40 and 0 <= est["interval"][0] <= est["accuracy"] <= est["interval"][1] <= 1
    out = session.export(tmp_path / "labels.csv", accept=True)
    rows = session.labels(accept=True)
    assert len(rows) >= 40 and all(label in ("ants", "bees") for _, label in rows)
    data = load_data([str(out)])  # the export is data: scan, split
    assert sorted(data.class_names) == ["ants", "bees"] and len(data.split) == len(rows)
    assert digest(pile) == before
    assert not any(str(pile) in str(p) for p in session.store.path.parents)  # answers live in the cache


def test_the_same_answers_give_the_same_suggestions(pile):
    one = LabelingSession.open([pile], ("ants", "bees"))
    oracle_rounds(one, 2)
    again = LabelingSession.open([pile], ("bees", "ants"))  # a reload; the classes in the other order
    assert [s.to_dict() for s in one.suggest(10)] == [s.to_dict() for s in again.suggest(10)]


def test_answers_survive_a_reload_and_two_writers_at_once(pile):
    session = LabelingSession.open([pile], ("ants", "bees"))
    paths = session.pile.paths

    def answer(part: list[str]) -> None:
        tab = LabelingSession(session.pile, session.classes, _features(session))  # another tab
        for p in part:
            tab.answer(p, truth(p))

    threads = [threading.Thread(target=answer, args=(paths[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reloaded = LabelingSession.open([pile], ("ants", "bees"))
    assert len(reloaded.entries()) == 60
    reloaded.answer(paths[0], "skip")  # the last answer on an image wins
    assert session.entries()[session.pile.keys[0]]["label"] == "skip"
    session.forget([paths[0]])
    assert len(reloaded.entries()) == 59


def _features(session):
    from bincls.labeling.features import pile_features

    return pile_features(session.pile.paths)


def test_a_pile_opened_through_a_link_finds_the_same_answers(pile, tmp_path):
    session = LabelingSession.open([pile], ("ants", "bees"))
    session.answer(session.pile.paths[3], "bees")
    (tmp_path / "link").symlink_to(pile)
    linked = LabelingSession.open([tmp_path / "link"], ("ants", "bees"))
    assert linked.store.path == session.store.path
    assert linked.status().answered["bees"] == 1


def test_importing_a_file_replaces_its_previous_import_and_keeps_session_answers(pile, tmp_path):
    session = LabelingSession.open([pile], ("ants", "bees"))
    paths = session.pile.paths
    session.answer(paths[0], "neither")
    answers = tmp_path / "answers.csv"
    answers.write_text("path,label\n" + "".join(f"{p},{truth(p).upper()}\n" for p in paths[1:6])
                       + f"{tmp_path}/elsewhere.jpg,ants\n{paths[7]},cat\n")  # fmt: skip
    imported = session.import_answers(answers)
    assert imported.used == 5 and len(imported.not_in_pile) == 1
    assert "is not ants, bees" in imported.bad_rows[0][1]
    assert session.status().answered["neither"] == 1
    answers.write_text("")  # the file emptied: what it brought in goes, the session's own answer stays
    session.import_answers(answers)
    assert {e["label"] for e in session.entries().values()} == {"neither"}


def test_accepted_guesses_are_marked_and_can_be_undone(pile):
    session = LabelingSession.open([pile], ("ants", "bees"))
    oracle_rounds(session, 3)
    with pytest.raises(BinclsError, match="from 0.5 to 1"):
        session.accept_confident(0.2)
    applied = session.accept_confident(0.6)
    accepted = [k for k, e in session.entries().items() if e["how"] == "accepted"]
    assert applied.added == len(accepted) > 0 and all(0.6 <= session.entries()[k]["p"] <= 1 for k in accepted)
    assert session.status().accepted["ants"] + session.status().accepted["bees"] == len(accepted)
    assert not set(accepted) & {s.path for s in session.suggest(10)}  # an accepted image is not asked again
    session.forget([session.pile.paths[session._index[k]] for k in accepted])
    assert all(e["how"] == "answer" for e in session.entries().values())


def test_answers_must_be_a_class_skip_or_neither(pile):
    session = LabelingSession.open([pile], ("ants", "bees"))
    with pytest.raises(BinclsError, match="is not an answer"):
        session.answer(session.pile.paths[0], "wasps")
    with pytest.raises(BinclsError, match="not an image of this pile"):
        session.answer("/elsewhere/x.jpg", "ants")
    for classes in (("a", "A"), ("a", "skip"), ("only",)):
        with pytest.raises(BinclsError):
            LabelingSession.open([pile], classes)


def test_a_damaged_answers_file_is_refused(pile):
    session = LabelingSession.open([pile], ("ants", "bees"))
    session.answer(session.pile.paths[0], "ants")
    session.store.path.write_text('{"format": "bincls-keyed-store", "version": 1, "entr')
    with pytest.raises(BinclsError, match="damaged"):
        session.suggest(5)


def test_the_pile_lists_what_it_cannot_use_and_asks_about_copies_once(tmp_path):
    make_folder(tmp_path / "pile" / "deep" / "er", 4)
    jpeg(tmp_path / "pile" / "a.jpg", seed=50)
    shutil.copy(tmp_path / "pile" / "a.jpg", tmp_path / "pile" / "copy.jpg")
    text_file(tmp_path / "pile" / "notes.jpg")
    truncated_jpeg(tmp_path / "pile" / "cut.jpg")
    (tmp_path / "pile" / ".hidden.png").write_bytes(b"x")
    pile = find_pile([tmp_path / "pile", tmp_path / "pile" / "deep"])  # a folder inside another: once
    assert len(pile.paths) == 5
    reasons = {Path(s.path).name: s.reason for s in pile.skipped}
    assert set(reasons) == {"copy.jpg", "notes.jpg", "cut.jpg", ".hidden.png"}
    assert "the same image as" in reasons["copy.jpg"]


def test_without_a_model_the_batch_looks_where_the_answers_are_not(pile):
    session = LabelingSession.open([pile], ("ants", "bees"))
    ants = [p for p in session.pile.paths if truth(p) == "ants"][:5]
    session.answer_many(dict.fromkeys(ants, "ants"))
    batch = session.suggest(5)
    assert {s.why for s in batch} == {"unlike the answers"} and {s.guess for s in batch} == {"bees"}


def test_a_round_reads_no_torch_once_the_features_are_cached(pile):
    import subprocess
    import sys

    LabelingSession.open([pile], ("ants", "bees"))  # computes and caches the features
    code = ("import sys; from bincls.cli import main; "
            "main(['label', sys.argv[1], '--classes', 'ants', 'bees', '--next', '3', '--json']); "
            "print('torch' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code, str(pile)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 3 and out.stderr.strip().endswith("False")


def test_guesses_come_from_the_answers(pile):
    """Pixel features are weak on ants and bees, but a model on 40 answers guesses the rest better than
    a coin (the estimate says how well)."""
    session = LabelingSession.open([pile], ("ants", "bees"))
    oracle_rounds(session, 4)
    _, g, _, _, unavailable = session._state()
    rest = np.setdiff1d(np.arange(60), unavailable)
    right = [(g.p1[i] >= 0.5) == (truth(session.pile.paths[i]) == "bees") for i in rest]
    assert g.model is not None and np.mean(right) > 0.5
