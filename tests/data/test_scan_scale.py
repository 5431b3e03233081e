"""Large folders: the scan keeps a bounded amount of work in flight and its memory flat as the folder
grows, reports its progress, and the Data page stays usable (paged tables, sampled thumbnails)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import bincls.data.scan as scan_mod
from bincls.data.scan import ImageRecord, find_duplicates, iter_checks
from pages.support.shared import keys

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "bincls" / "sample_data"
APP = str(ROOT / "app.py")


def link_tree(dest: Path, n: int) -> Path:
    """`n` hard links to the shipped sample (ants and bees, 30 each) in dest/ants and dest/bees."""
    sources = sorted(SAMPLE.glob("*/*.jpg"))
    for cls in ("ants", "bees"):
        (dest / cls).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        src = sources[i % len(sources)]
        out = dest / src.parent.name / f"{i:06d}.jpg"
        try:
            os.link(src, out)
        except OSError:  # a file system without hard links
            out.write_bytes(src.read_bytes())
    return dest


def fake_check(path: str) -> dict:
    """A verdict without opening the file: the streaming machinery is under test, not the decoder."""
    return {"ok": False, "reason": f"not an image ({os.path.basename(path)})"}


class CountingPool(scan_mod.ThreadPoolExecutor):
    submitted = 0

    def submit(self, *args, **kwargs):
        CountingPool.submitted += 1
        return super().submit(*args, **kwargs)


# ---- fast: the streaming check ----


def test_checks_come_back_in_order_with_a_bounded_number_in_flight(monkeypatch):
    monkeypatch.setattr(scan_mod, "_check", fake_check)
    monkeypatch.setattr(scan_mod, "ThreadPoolExecutor", CountingPool)
    CountingPool.submitted = 0
    paths = [f"/no/such/dir/{i:05d}.jpg" for i in range(3000)]
    calls = []
    window = 2 * scan_mod.IN_FLIGHT_PER_WORKER
    seen = []
    for i, (path, res, cached) in enumerate(
        iter_checks(paths, lambda d, t: calls.append((d, t)), use_cache=False, workers=2)
    ):
        assert CountingPool.submitted - i <= window + 1  # never the whole folder at once
        assert not cached and res["reason"].endswith(f"({os.path.basename(path)})")
        seen.append(path)
    assert seen == paths
    assert calls[0] == (0, 3000) and calls[-1] == (3000, 3000)
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(done) < 3000  # throttled by time, not one call per file


def test_checks_fill_and_reuse_the_cache_chunk_by_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(scan_mod, "_check", lambda p: {"ok": False, "reason": "empty file (0 bytes)"})
    n = scan_mod.CHUNK * 2 + 7  # several chunks, several lookup batches each
    paths = []
    for i in range(n):
        p = tmp_path / f"{i:05d}.jpg"
        p.touch()
        paths.append(str(p))
    first = list(iter_checks(paths))
    assert [p for p, _, _ in first] == paths and not any(c for _, _, c in first)
    second = list(iter_checks(paths))
    assert [p for p, _, _ in second] == paths and all(c for _, _, c in second)
    assert {r["reason"] for _, r, _ in second} == {"empty file (0 bytes)"}


def test_a_scan_interrupted_by_its_progress_callback_keeps_what_it_checked(tmp_path, monkeypatch):
    # The app's progress bar raises when the user reruns the page: the next scan resumes, not restarts.
    monkeypatch.setattr(scan_mod, "_check", lambda p: {"ok": False, "reason": "empty file (0 bytes)"})
    paths = []
    for i in range(1500):
        (tmp_path / f"{i:04d}.jpg").touch()
        paths.append(str(tmp_path / f"{i:04d}.jpg"))

    def stop_late(done: int, total: int) -> None:
        if done >= 1200:
            raise KeyboardInterrupt

    monkeypatch.setattr(scan_mod, "PROGRESS_SECONDS", 0.0)
    with pytest.raises(KeyboardInterrupt):
        list(iter_checks(paths, stop_late))
    assert sum(cached for _, _, cached in iter_checks(paths)) == 1200


def test_a_scan_stopped_early_checks_no_more_than_its_window(monkeypatch):
    monkeypatch.setattr(scan_mod, "ThreadPoolExecutor", CountingPool)
    CountingPool.submitted = 0
    checks = iter_checks([f"/no/such/{i}.jpg" for i in range(5000)], use_cache=False, workers=2)
    for _ in range(10):
        next(checks)
    checks.close()
    assert CountingPool.submitted <= 10 + 2 * scan_mod.IN_FLIGHT_PER_WORKER + 1


def test_many_copies_are_grouped_in_one_pass_with_one_reason_per_group():
    digests = [hashlib.sha256(str(k).encode()).hexdigest() for k in range(60)]
    recs = [
        ImageRecord(f"/d/{'ab'[k % 2]}/{i:06d}.jpg", k % 2, None, 8, 8, "RGB", "JPEG", 100, digests[k])
        for i in range(30_000)
        for k in [i % 60]
    ]
    recs.append(ImageRecord("/d/b/conflict.jpg", 1, None, 8, 8, "RGB", "JPEG", 100, digests[0]))
    duplicates, conflicts, excluded = find_duplicates(recs, ["a", "b"])
    assert len(duplicates) == 60 and all(len(g) >= 500 for g in duplicates)
    assert len(conflicts) == 1 and len(conflicts[0]) == 501
    assert len(excluded) == 30_001 - 59  # one kept per group, every copy of the conflict left out
    assert len({id(reason) for reason in excluded.values()}) == 60  # shared, not one string per file
    assert next(g for g in duplicates if "/d/b/000061.jpg" in g)[0] == "/d/b/000001.jpg"
    assert excluded["/d/b/000061.jpg"] == "duplicate of /d/b/000001.jpg"


# ---- slow: real folders of tens of thousands of files ----

CHILD = """
import json, resource, sys
from bincls.data.folder_layout import resolve_layout
from bincls.data.scan import scan_layout

def rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
base = rss_kb()
calls = []
scan = scan_layout(resolve_layout([sys.argv[1]]), progress=lambda d, t: calls.append((d, t)))
print(json.dumps({
    "base_kb": base, "peak_kb": rss_kb(), "calls": calls, "images": len(scan.images),
    "skipped": len(scan.skipped), "groups": len(scan.duplicates),
    "usable": sum(scan.class_counts(usable_only=True)),
}))
"""


def scan_in_child(folder: Path, cache: Path) -> dict:
    env = {**os.environ, "BINCLS_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-c", CHILD, str(folder)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_scan_of_20k_files_keeps_its_memory_flat_and_reports_progress(tmp_path):
    small, big = 2_000, 20_000
    runs = {n: scan_in_child(link_tree(tmp_path / f"d{n}", n), tmp_path / f"cache{n}") for n in (small, big)}
    for n, r in runs.items():
        assert r["images"] == n and r["skipped"] == 0
        assert r["groups"] == 60 and r["usable"] == 60  # every link is a copy of one of 60 images
        done = [d for d, _ in r["calls"]]
        assert {t for _, t in r["calls"]} == {n}
        assert done[0] == 0 and done[-1] == n and done == sorted(done) and len(set(done)) > 5
    growth = {n: r["peak_kb"] - r["base_kb"] for n, r in runs.items()}
    per_file_kb = (growth[big] - growth[small]) / (big - small)
    # Per file the scan keeps a path, a record and a hash (well under 1 KB); holding every check's
    # full result or pixels would cost several KB per file.
    assert per_file_kb < 1.5, (growth, per_file_kb)


@pytest.mark.slow
def test_the_data_page_pages_its_tables_on_a_large_folder(tmp_path):
    root = link_tree(tmp_path / "big", 3_000)
    for i in range(250):  # more skipped files than one page of the table
        (root / "ants" / f"notes{i:03d}.txt").write_text("not an image")
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state[keys.DATA_PATHS] = [str(root)]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["ants"] == "30 / 1500" and metrics["Skipped files"] == "250"
    captions = " ".join(c.value for c in at.caption)
    assert "Showing rows 1–200 of 250." in captions
    assert "Showing rows 1–200 of 2,940." in captions  # the files left out of training
    assert "(0 conflict and 60 duplicate groups in all)" in captions
    tables = [d.value for d in at.dataframe if list(d.value.columns) == ["file", "reason"]]
    assert [len(t) for t in tables] == [200, 200]
    thumbs = sum(len(im.captions) for im in at.image)
    assert 0 < thumbs <= 12 * 3 + 2 * 12  # a dozen groups of three, a dozen samples per class

    at.number_input(key=keys.DATA_SKIPPED_PAGE).set_value(2).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Showing rows 201–250 of 250." in " ".join(c.value for c in at.caption)
    tables = [d.value for d in at.dataframe if list(d.value.columns) == ["file", "reason"]]
    assert len(tables[0]) == 50 and tables[0]["file"].iloc[-1] == os.path.join("ants", "notes249.txt")
