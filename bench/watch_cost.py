"""What watching a run costs: training speed and the Streamlit server's CPU with the Train page open in
Chromium, against the page closed, in the same run.

The issue measured 0.4-0.67 of a core for the server while the Train page was open on a 2-core machine,
and epochs 3-8x slower watched than unwatched. Here, in one process:

  1. start `streamlit run app.py` with its own runs/cache folders (as a user starts it), and a small-cnn
     run in the background the way the Train page does (bincls.training.launcher.start_training), on
     ../shared/data/hymenoptera when present, else the bundled sample; wait until it takes steps;
  2. closed: no browser connected for --seconds; count the run's training steps and the CPU seconds
     the server process used;
  3. watched: Chromium opens the Train page, which follows the run live; the same for --seconds, after
     the page has drawn the run (the server's and Chromium's CPU are counted apart);
  4. closed again (the browser gone), to see drift in the machine's load; then stop the run.

The ratios compare watched with the mean of the two closed phases. Target: the server costs < 0.05 of
a core while the run is watched. Other processes on the machine move every figure: the load average is
printed beside each phase.

    .venv/bin/python bench/watch_cost.py [--seconds 40] [--img-size 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import psutil  # noqa: E402
from browser import CHROMIUM, CHROMIUM_ARGS, serve_app_process  # noqa: E402

from bincls.paths import SAMPLE_DATA  # noqa: E402
from bincls.runs.folder import ACTIVE, RunFolder  # noqa: E402
from bincls.training.config import TrainConfig  # noqa: E402
from bincls.training.launcher import start_training, stop_and_wait  # noqa: E402

HYMENOPTERA = ROOT.parent / "shared" / "data" / "hymenoptera"
TARGET_CORES = 0.05


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def steps_done(run: RunFolder) -> int:
    return int(run.status().get("global_step") or 0)


def wait_for_steps(run: RunFolder, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if steps_done(run) >= 2:
            return
        if run.status().get("state") not in ACTIVE:
            raise RuntimeError(f"run {run.id} ended before training: see {run.path / 'console.txt'}")
        time.sleep(0.5)
    raise TimeoutError(f"run {run.id} took no step in {timeout:.0f} s")


def measure(run: RunFolder, server: psutil.Process, seconds: float, browser_procs=()) -> dict:
    """Steps per second of the run, and cores used by the server (and the browser), over `seconds`."""
    s0, c0, b0, t0 = steps_done(run), cpu_seconds([server]), cpu_seconds(list(browser_procs)), time.time()
    time.sleep(seconds)
    s1, c1, b1, t1 = steps_done(run), cpu_seconds([server]), cpu_seconds(list(browser_procs)), time.time()
    return {"steps_per_s": (s1 - s0) / (t1 - t0), "server_cores": (c1 - c0) / (t1 - t0),
            "browser_cores": (b1 - b0) / (t1 - t0), "load": os.getloadavg()[0]}  # fmt: skip


def chromium_processes(root_pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(root_pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def watched(url: str, run: RunFolder, server: psutil.Process, seconds: float) -> dict:
    """The measurement with the Train page open in Chromium, once it shows the run's live panel."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(180_000)
            page.goto(url + "/train")
            page.get_by_role("button", name="Stop").wait_for()  # the live panel follows the run
            time.sleep(5)  # the first draws are over
            procs = chromium_processes(browser.process.pid) if hasattr(browser, "process") else []
            if not procs:  # Playwright does not expose the pid: every chromium process of ours
                procs = [q for q in psutil.Process().children(recursive=True) if "chrom" in q.name().lower()]
            return measure(run, server, seconds, procs)
        finally:
            browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=40.0, help="length of each phase (default 40)")
    ap.add_argument("--img-size", type=int, default=64, help="the run's image size (default 64)")
    args = ap.parse_args()
    data = HYMENOPTERA if HYMENOPTERA.is_dir() else SAMPLE_DATA
    print(f"machine: {os.cpu_count()} cores; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bincls-bench-") as tmp:
        dirs = {f"BINCLS_{n}_DIR": str(Path(tmp) / n.lower()) for n in ("RUNS", "CACHE", "UPLOADS")}
        os.environ.update(dirs)  # the run and the server share the runs folder
        with serve_app_process(dirs) as (url, proc):
            server = psutil.Process(proc.pid)
            cfg = TrainConfig(data=[str(data)], model="small-cnn", img_size=args.img_size, epochs=1000,
                              patience=0, time_budget=0.0, preset="scratch")  # fmt: skip
            run = start_training(cfg, dirs["BINCLS_RUNS_DIR"])
            try:
                wait_for_steps(run)
                print(f"run: small-cnn at {args.img_size} px on {data} in its own process; "
                      f"{args.seconds:.0f} s per phase")  # fmt: skip
                phases = [("closed", measure(run, server, args.seconds))]
                phases.append(("watched", watched(url, run, server, args.seconds)))
                time.sleep(3)  # the session ends when the browser goes
                phases.append(("closed again", measure(run, server, args.seconds)))
            finally:
                stop_and_wait(run)
    report(phases)


def report(phases: list[tuple[str, dict]]) -> None:
    print(f"\n{'phase':<14} {'steps/s':>8} {'server cores':>13} {'chromium cores':>15} {'load 1m':>8}")
    for name, m in phases:
        browser = f"{m['browser_cores']:.3f}" if name == "watched" else "-"
        print(f"{name:<14} {m['steps_per_s']:>8.2f} {m['server_cores']:>13.3f} {browser:>15} "
              f"{m['load']:>8.2f}")
    closed = [m for name, m in phases if name != "watched"]
    base_speed = sum(m["steps_per_s"] for m in closed) / len(closed)
    base_server = sum(m["server_cores"] for m in closed) / len(closed)
    w = dict(phases)["watched"]
    verdict = "ok" if w["server_cores"] < TARGET_CORES else "TOO COSTLY"
    print(f"\ntraining speed watched / closed: {w['steps_per_s'] / max(base_speed, 1e-9):.2f}")
    print(f"server while watched: {w['server_cores']:.3f} of a core ({verdict}; target < {TARGET_CORES}), "
          f"{w['server_cores'] - base_server:+.3f} over closed")  # fmt: skip


if __name__ == "__main__":
    main()
