"""The keyed store: merges under a lock, atomic files, damaged files refused, keys by resolved path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bincls.data.keyed_store import KeyedStore, path_key, path_keys
from bincls.errors import BinclsError

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from bincls.data.keyed_store import KeyedStore
store = KeyedStore(sys.argv[1], "test decisions")
for i in range(int(sys.argv[3])):
    store.update({f"{sys.argv[2]}-{i}": i})
"""


def test_update_merges_and_counts_what_it_applied(tmp_path):
    store = KeyedStore(tmp_path / "s.json", "test decisions")
    assert store.entries() == {}
    first = store.update({"a": 1, "b": 2})
    assert (first.added, first.changed, first.removed) == (2, 0, 0)
    again = store.update({"a": 1, "b": 3, "c": None, "d": 4})
    assert (again.added, again.changed, again.unchanged, again.removed) == (1, 1, 1, 0)
    gone = store.update({"a": None})
    assert gone.removed == 1 and store.entries() == {"b": 3, "d": 4}
    assert store.update({"x": 1}, replace=True).removed == 2 and store.entries() == {"x": 1}
    assert store.update({}, meta={"classes": ["A", "B"]}).written == 0
    assert store.read().meta == {"classes": ["A", "B"]} and store.entries() == {"x": 1}


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "s.json"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, "150"], cwd=ROOT)
             for name in ("one", "two")]  # fmt: skip
    assert all(p.wait(timeout=120) == 0 for p in procs)
    entries = KeyedStore(path, "test decisions").entries()
    assert len(entries) == 300 and entries["one-149"] == 149 and entries["two-0"] == 0


def test_threads_writing_at_once_lose_nothing(tmp_path):
    store = KeyedStore(tmp_path / "s.json", "test decisions")

    def write(name: str) -> None:
        for i in range(60):
            KeyedStore(store.path, "test decisions").update({f"{name}-{i}": i})

    threads = [threading.Thread(target=write, args=(f"t{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.entries()) == 240


def test_last_write_wins_per_key(tmp_path):
    one, two = KeyedStore(tmp_path / "s.json", "x"), KeyedStore(tmp_path / "s.json", "x")
    one.update({"img": "A", "other": "B"})
    two.update({"img": "B"})
    assert one.entries() == {"img": "B", "other": "B"}


@pytest.mark.parametrize("damage", ["truncated", "empty", "not-json", "other-json", "no-table"])
def test_a_damaged_file_is_refused_and_left_as_it_is(tmp_path, damage):
    store = KeyedStore(tmp_path / "s.json", "test decisions")
    store.update({f"k{i}": i for i in range(4)})
    text = store.path.read_text()
    broken = {
        "truncated": text[: len(text) // 2],
        "empty": "",
        "not-json": "\x00\x01 garbage",
        "other-json": json.dumps([1, 2, 3]),
        "no-table": json.dumps({"format": "bincls-keyed-store", "version": 1, "entries": [1]}),
    }[damage]
    store.path.write_text(broken)
    with pytest.raises(BinclsError, match="damaged") as err:
        store.entries()
    assert str(store.path) in str(err.value)
    with pytest.raises(BinclsError, match="nothing was saved"):
        store.update({"k9": 9})
    assert store.path.read_text() == broken  # not overwritten: what was in it can still be restored


def test_no_temporary_files_are_left_behind(tmp_path):
    store = KeyedStore(tmp_path / "s.json", "x")
    for i in range(5):
        store.update({str(i): i})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.json.lock"]


def test_keys_resolve_the_folder_through_links_and_relative_parts(tmp_path, monkeypatch):
    real = tmp_path / "photos" / "ants"
    real.mkdir(parents=True)
    (real / "a.jpg").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "photos")
    (real / "b.jpg").symlink_to(real / "a.jpg")  # a linked file keeps its own name: it is its own entry
    monkeypatch.chdir(tmp_path)
    expected = str(real.resolve() / "a.jpg")
    assert path_key(tmp_path / "link" / "ants" / "a.jpg") == expected
    assert path_key("photos/ants/../ants/a.jpg") == expected
    assert path_keys(["link/ants/a.jpg", "link/ants/b.jpg"]) == [expected, str(real.resolve() / "b.jpg")]
    assert os.path.basename(path_key(real / "b.jpg")) == "b.jpg"
