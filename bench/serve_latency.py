"""Latency and throughput of `bincls serve` at 1, 4, 8 and 16 concurrent clients, against in-process predict.

The model is a run given with --run, else a fresh 5-epoch mobilenet_v2 on ../shared hymenoptera with the
shared ImageNet weights (frozen backbone), served as a user would: `bincls serve RUN [--fp32|--int8]`, which
serves the run's current export beside its checkpoint, else exports it (into a temporary cache folder)
before it answers. The images are 200 real photos
(hymenoptera from ../shared, else the shipped sample, repeated). In the same run it measures:

  in-process PyTorch   Predictor.predict on each file's bytes, one at a time (what `bincls predict` runs),
                       on one torch thread (--torch-threads): as each onnxruntime run, and because two
                       torch threads spin-wait for each other when other work shares the cores
  in-process ONNX      OnnxPredictor.predict on the same bytes (what the server runs, without HTTP;
                       by default INT8 and fp32 for the images near the threshold, as served)
  serve, C clients     C threads each POSTing one image per request to a `bincls serve` process,
                       keep-alive connections, until all requests are answered

and checks that every request got a 200 and the server's label equals the in-process PyTorch label.
The client (http.client, bodies built beforehand) shares the machine's cores with the server, as a
client on the same box would. Load averages are printed before and after: other work on the machine
inflates every figure.

    .venv/bin/python bench/serve_latency.py [--run runs/RUN_ID] [--precision auto|fp32|int8] [--requests 200]
        [--images FOLDER]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from bincls.inference.onnx_predict import OnnxPredictor  # noqa: E402
from bincls.inference.predict import Predictor  # noqa: E402
from bincls.paths import SAMPLE_DATA  # noqa: E402
from bincls.serve.server import PRECISIONS, model_files  # noqa: E402

SHARED = ROOT.parent / "shared"
HYMENOPTERA = SHARED / "data" / "hymenoptera"


def images(n: int, folder: str | None = None) -> tuple[list[str], list[bytes], str]:
    """n photos spread over `folder` (default: ../shared hymenoptera, else the shipped sample), repeated."""
    if folder:
        root, what = Path(folder), Path(folder).name
    else:
        root, what = (HYMENOPTERA, "hymenoptera") if HYMENOPTERA.is_dir() else (SAMPLE_DATA, "shipped sample")
    files = sorted(str(p) for p in root.rglob("*.jp*g"))
    picked = [files[i % len(files)] for i in np.linspace(0, len(files) - 1, n).astype(int)]
    return [Path(p).name for p in picked], [Path(p).read_bytes() for p in picked], what


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, port: int, precision: str, cache: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bincls", "serve", str(run), "--port", str(port), "--no-access-log"]
    env = {**os.environ, "BINCLS_CACHE_DIR": str(cache)}
    with open(log, "w") as out:
        flag = [] if precision == "auto" else [f"--{precision}"]
        proc = subprocess.Popen(cmd + flag, cwd=ROOT, stdout=out, stderr=out, env=env)
    deadline = time.time() + 1200  # the run is exported (and checked) first
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not start: {log.read_text()[-2000:]}")


def run_clients(port: int, bodies: list[tuple[bytes, str]], clients: int) -> tuple[list[float], list, float]:
    """Every body POSTed once by `clients` threads; (seconds per request, answers in order, wall seconds)."""
    latencies: list[float] = [0.0] * len(bodies)
    answers: list = [None] * len(bodies)
    next_index = iter(range(len(bodies)))
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            body, ctype = bodies[i]
            start = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            payload = resp.read()
            latencies[i] = time.perf_counter() - start
            answers[i] = (resp.status, json.loads(payload))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, answers, time.perf_counter() - start


def timed(fn, items) -> tuple[list[float], list]:
    out, times = [], []
    for item in items:
        start = time.perf_counter()
        out.append(fn(item))
        times.append(time.perf_counter() - start)
    return times, out


def row(label: str, times: list[float], wall: float, n: int) -> str:
    ms = np.array(times) * 1000
    return f"| {label:<24} | {np.percentile(ms, 50):7.1f} | {np.percentile(ms, 90):7.1f} | {n / wall:8.1f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="a run folder (default: train mobilenet_v2 on ../shared hymenoptera)")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="as `bincls serve`: auto (INT8, fp32 near the threshold), fp32, int8")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--images", help="a folder of photos to send (default: ../shared hymenoptera)")
    ap.add_argument("--clients", default="1,4,8,16")
    ap.add_argument("--torch-threads", type=int, default=1, help="for the in-process PyTorch baseline")
    ap.add_argument("--cache", help="folder for the exported files, kept between runs (default: temporary)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    load_before = os.getloadavg()
    names, blobs, what = images(args.requests, args.images)
    with tempfile.TemporaryDirectory(prefix="bincls-serve-bench-") as tmp:
        from export_parity import train_run

        run = Path(args.run) if args.run else train_run(Path(tmp))
        port, cache = free_port(), Path(args.cache or Path(tmp) / "cache")
        server = start_server(run, port, args.precision, cache, Path(tmp) / "server.log")
        os.environ["BINCLS_CACHE_DIR"] = str(cache)  # the files the server found or exported: no export here
        onnx_file, exact, threshold = model_files(run, args.precision)
        onnx_pred = OnnxPredictor(onnx_file, threshold=threshold, exact=exact).fast_preprocessing()
        torch_pred = Predictor(onnx_pred.info["provenance"]["checkpoint"], device="cpu")
        for b in blobs[:5]:  # warm-up: first calls pay for lazy initialisation
            torch_pred.predict(b), onnx_pred.predict(b)
        cpu = time.process_time()
        torch_t, torch_ans = timed(torch_pred.predict, blobs)
        torch_cpu, cpu = (time.process_time() - cpu) / len(blobs) * 1000, time.process_time()
        onnx_t, _ = timed(onnx_pred.predict, blobs)
        onnx_cpu = (time.process_time() - cpu) / len(blobs) * 1000
        expected = [(a.class_name, a.ood) for a in torch_ans]
        bodies = [multipart(n, b) for n, b in zip(names, blobs)]
        try:
            run_clients(port, bodies[:8], 2)  # warm-up
            served, server_cpu = {}, {}
            for c in (int(x) for x in args.clients.split(",")):
                before = sum(psutil.Process(server.pid).cpu_times()[:2])
                served[c] = run_clients(port, bodies, c)
                spent = sum(psutil.Process(server.pid).cpu_times()[:2]) - before
                server_cpu[c] = spent / len(bodies) * 1000
        finally:
            server.terminate()
            server.wait(timeout=30)
    load_after = os.getloadavg()
    info = onnx_pred.info
    precision = info["precision"] + (f" (fp32 within {onnx_pred.borderline:.3f} of the threshold)"
                                     if onnx_pred.exact else "")  # fmt: skip
    print(f"{info['model']} {precision} at {info['input']['preprocessing']['img_size']} px, {args.requests} "
          f"real images ({what}), one image per request; {os.cpu_count()} cores")  # fmt: skip
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)\n")
    print(f"| {'how':<24} | {'p50 ms':>7} | {'p90 ms':>7} | {'images/s':>8} |")
    print(f"|{'-' * 26}|{'-' * 8}:|{'-' * 8}:|{'-' * 9}:|")
    print(row("in-process PyTorch", torch_t, sum(torch_t), len(blobs)) + f" CPU {torch_cpu:.1f} ms per image")
    print(row("in-process ONNX", onnx_t, sum(onnx_t), len(blobs)) + f" CPU {onnx_cpu:.1f} ms per image")
    base = float(np.median(torch_t))
    for c, (lat, answers, wall) in served.items():
        ok = [a[1][0] if a and a[0] == 200 else None for a in answers]
        same = sum(1 for a, (cls, _) in zip(ok, expected) if a and a["class_name"] == cls)
        same_ood = sum(1 for a, (_, ood) in zip(ok, expected) if a and a["ood"] == ood)
        print(row(f"serve, {c} client{'s' if c > 1 else ''}", lat, wall, len(blobs))
              + f" server CPU {server_cpu[c]:.1f} ms per image; errors {ok.count(None)}, same label as "
              f"PyTorch {same}/{len(blobs)}, same ood flag {same_ood}/{len(blobs)}; "
              f"p50 {np.median(lat) / base:.1f}x in-process PyTorch")  # fmt: skip
    if 8 in served:  # the check: 8 at a time, 0 errors, the CLI's labels, p50 <= 50 ms on 2 cores
        lat, answers, _ = served[8]
        errors = sum(1 for a in answers if a is None or a[0] != 200)
        print(f"\n8 clients: p50 {np.median(lat) * 1000:.1f} ms (target <= 50), {errors} errors")


if __name__ == "__main__":
    main()
