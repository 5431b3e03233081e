"""Predict stays under 1 s per image for small-cnn while a run trains on the same CPU (issue 7).

Uses bench/predict_under_training.py's steps: a real checkpoint, a background run started the app's
way, then every image predicted on its own (with and without the heat map) while the run trains.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bincls.paths import SAMPLE_DATA, runs_dir

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "predict_under_training.py"


def _bench():
    spec = importlib.util.spec_from_file_location("predict_under_training", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_predict_p95_under_one_second_while_a_run_trains(tmp_path):
    from bincls.inference.predict import Predictor

    bench = _bench()
    blobs = [p.read_bytes() for p in sorted(SAMPLE_DATA.rglob("*.jpg"))[:30]]
    pred = Predictor(bench.train_checkpoint(tmp_path / "ckpt"), device="cpu")
    run = bench.start_background_run(runs_dir(), SAMPLE_DATA)
    try:
        bench.wait_for_steps(run)
        before = bench.step_lines(run)
        times = bench.time_predictions(pred, blobs)
        assert run.status()["state"] == "running"
        assert bench.step_lines(run) >= before  # still training (a validation pass writes no step lines)
    finally:
        assert bench.stop_and_wait(run) == "stopped"
    for mode, t in times.items():
        stats = bench.stats_ms(t)
        assert stats["p95"] < 1000, f"{mode}: {stats} ms per image while training"
