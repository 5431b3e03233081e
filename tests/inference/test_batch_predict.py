"""Predicting many images for a page: chunks with progress, the first few in full, one thread beside a run."""

from __future__ import annotations

import os

import torch

from bincls.inference.batch_predict import (
    CHUNK,
    SMALL_SIDE,
    class_counts,
    explain_many,
    prediction_threads,
)
from bincls.inference.predict import Predictor
from bincls.paths import SAMPLE_DATA
from bincls.runs.folder import RunFolder


def _items(n: int) -> list[tuple[str, str]]:
    files = sorted(str(p) for p in SAMPLE_DATA.rglob("*.jpg"))
    return [(f, f) for f in (files * 2)[:n]]


def test_order_full_views_small_views_and_progress(trained_sample_run, tmp_path):
    pred = Predictor(trained_sample_run / "best.pt", device="cpu")
    items = _items(CHUNK + 8)
    items[5] = ("broken.jpg", b"not an image")  # a bad file gets its message, the others go on
    calls = []
    out = explain_many(pred, items, heatmaps=True, full_views=3, progress=lambda d, t: calls.append((d, t)),
                       runs_dir=tmp_path)  # fmt: skip
    assert [e.prediction.source for e in out] == [name for name, _ in items]
    # A count from the start (0 of n), after the slow full views, then after each chunk: never a silent wait.
    assert calls == [(0, CHUNK + 8), (3, CHUNK + 8), (CHUNK + 3, CHUNK + 8), (CHUNK + 8, CHUNK + 8)]
    assert all(e.heatmap is not None and max(e.image.size) > SMALL_SIDE for e in out[:3])
    good_rest = [e for e in out[3:] if e.prediction.error is None]
    assert len(good_rest) == len(items) - 4
    assert all(e.heatmap is None and max(e.image.size) <= SMALL_SIDE for e in good_rest)
    assert out[5].prediction.error and out[5].image is None
    same = pred.predict_many([s for _, s in items[:3]])  # the same model output as a plain prediction
    assert [round(e.prediction.p_class1, 5) for e in out[:3]] == [round(p.p_class1, 5) for p in same]
    counts = class_counts([e.prediction for e in out], pred.class_names)
    assert counts["unreadable"] == 1 and sum(counts.values()) == len(items)
    assert counts[pred.class_names[0]] == sum(e.prediction.class_name == pred.class_names[0] for e in out)


def test_one_thread_on_the_cpu_while_a_run_trains(trained_sample_run, tmp_path):
    assert prediction_threads(torch.device("cpu"), tmp_path) is None
    live = RunFolder.create(tmp_path, "x")
    live.set_status(state="running", pid=os.getpid())  # this process: alive, so the run counts as training
    assert prediction_threads(torch.device("cpu"), tmp_path) == 1
    assert prediction_threads(torch.device("cuda"), tmp_path) is None  # a GPU does not share the cores

    pred = Predictor(trained_sample_run / "best.pt", device="cpu")
    seen, real = [], pred.predict_explained

    def watched(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    pred.predict_explained = watched
    before = torch.get_num_threads()
    explain_many(pred, _items(2), heatmaps=False, runs_dir=tmp_path)
    assert seen == [1] and torch.get_num_threads() == before
