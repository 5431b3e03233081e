"""Features are cached per image: a pile that grows by a file computes that file, not the pile again."""

from __future__ import annotations

import os
import time

import numpy as np
from imagefactory import make_folder

from bincls.audit.feature_cache import cached_features, features_for


def counting_compute(calls: list):
    def compute(paths):
        calls.extend(paths)
        for i, p in enumerate(paths):
            yield i, (None if p.endswith("bad.png") else np.full(4, len(os.path.basename(p)), np.float32))

    return compute


def test_only_new_or_changed_files_are_computed(tmp_path):
    paths = [str(p) for p in make_folder(tmp_path / "pile", 6)]
    calls: list[str] = []
    first, failed = features_for(paths, "test-v1", counting_compute(calls))
    assert len(calls) == 6 and not failed and first.shape == (6, 4)
    grown = paths + [str(make_folder(tmp_path / "more", 1, seed=99)[0])]
    features_for(grown, "test-v1", counting_compute(calls))
    assert calls[6:] == [grown[-1]]  # one new file: one computation
    time.sleep(0.01)
    os.utime(paths[2])  # touched: its cached vector is no longer trusted
    features_for(grown, "test-v1", counting_compute(calls))
    assert calls[7:] == [paths[2]]
    matrix, missing = cached_features(grown, "test-v1")
    assert missing == [] and np.allclose(matrix[:6], first)
    assert cached_features(grown, "other-v1")[1] == list(range(7))  # another extractor: its own vectors


def test_a_file_that_cannot_be_read_is_reported_not_cached(tmp_path):
    paths = [str(p) for p in make_folder(tmp_path / "pile", 2)]
    bad = tmp_path / "pile" / "bad.png"
    bad.write_bytes(b"x")
    calls: list[str] = []
    matrix, failed = features_for([*paths, str(bad)], "test-v1", counting_compute(calls))
    assert failed == [2] and np.isnan(matrix[2]).all() and not np.isnan(matrix[:2]).any()
    features_for([*paths, str(bad)], "test-v1", counting_compute(calls))
    assert calls[3:] == [str(bad)]  # tried again next time


def test_a_cache_that_cannot_be_written_costs_time_not_a_failure(tmp_path, monkeypatch):
    paths = [str(p) for p in make_folder(tmp_path / "pile", 2)]
    broken = tmp_path / "broken-cache"
    (broken / "features-v1.sqlite").mkdir(parents=True)  # no database can be opened there
    (broken / "features").write_text("a file where the memos' folder should be")
    monkeypatch.setenv("BINCLS_CACHE_DIR", str(broken))
    calls: list[str] = []
    matrix, failed = features_for(paths, "test-v1", counting_compute(calls))
    assert matrix.shape == (2, 4) and not failed and len(calls) == 2
