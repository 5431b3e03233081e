"""Does the exported ONNX give `bincls predict`'s answer? PIL-decoded pixels of real images, fp32 and INT8.

For a run (default: a fresh 5-epoch mobilenet_v2 on ../shared hymenoptera with the shared ImageNet
weights, frozen backbone), on N real images it does not train on (hymenoptera val, spread over both
classes):

  bincls predict     the CLI itself (`python -m bincls predict RUN/best.pt FILES --json`): the reference
  ONNX fp32          best.onnx fed np.asarray(ImageOps.exif_transpose(Image.open(f)).convert("RGB"))
  ONNX INT8          best.int8.onnx fed the same pixels
  the obvious way    the float-tensor export fed PIL's bilinear resize, /255, mean/std (the baseline:
                     what people do with an export that leaves the preprocessing to them)

and prints the largest |P(class 1) - bincls predict's|, label agreement, accuracy, file size and the
one-thread CPU latency per image.

    .venv/bin/python bench/export_parity.py [--run runs/RUN_ID] [--images 80]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from bincls.inference.export import export_onnx  # noqa: E402
from bincls.inference.onnx_predict import session  # noqa: E402

HYMENOPTERA = ROOT.parent / "shared" / "data" / "hymenoptera"
WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2_imagenet.pth"


def train_run(runs: Path) -> Path:
    cmd = [sys.executable, "-m", "bincls", "train", str(HYMENOPTERA), "--model", "mobilenet_v2",
           "--weights", str(WEIGHTS), "--freeze-backbone", "--no-augment", "--epochs", "5",
           "--runs-dir", str(runs)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def cli_predictions(ckpt: Path, files: list[str]) -> list[float]:
    cmd = [sys.executable, "-m", "bincls", "predict", str(ckpt), *files, "--json", "--device", "cpu"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    return [p["p_class1"] for p in json.loads(out.stdout)]


def pil_pixels(path: str) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


def obvious_tensor(path: str, info: dict) -> np.ndarray:
    pre = info["input"]["preprocessing"]
    size = pre["img_size"]
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize((size, size), Image.BILINEAR)
    x = (np.asarray(img, dtype=np.float32) / 255 - np.array(pre["mean"])) / np.array(pre["std"])
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def scores(onnx: Path, inputs: list[np.ndarray]) -> tuple[np.ndarray, float]:
    sess = session(onnx)
    sess.run(["probabilities"], {"image": inputs[0]})
    p, times = [], []
    for x in inputs:
        start = time.perf_counter()
        p.append(sess.run(["probabilities"], {"image": x})[0][0, 1])
        times.append(time.perf_counter() - start)
    return np.array(p), float(np.median(times) * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="a run folder (default: train mobilenet_v2 on ../shared hymenoptera)")
    ap.add_argument("--images", type=int, default=80)
    args = ap.parse_args()
    files = sorted(str(p) for p in (HYMENOPTERA / "val").rglob("*") if p.is_file())
    files = [files[i] for i in np.linspace(0, len(files) - 1, args.images).astype(int)]
    truth = np.array([Path(f).parent.name == "bees" for f in files])
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bincls-parity-") as tmp:
        run = Path(args.run) if args.run else train_run(Path(tmp))
        out = Path(tmp)
        start = time.perf_counter()
        fp32 = export_onnx(run, out=out / "best.onnx")
        export_s = time.perf_counter() - start
        int8 = export_onnx(run, out=out / "best.int8.onnx", int8=True)
        tensor = export_onnx(run, out=out / "best.tensor.onnx", input="tensor")
        reference = np.array(cli_predictions(run / "best.pt", files))
        pixels = [pil_pixels(f) for f in files]
        rows = [("bincls predict (CLI)", reference, None, (run / "best.pt").stat().st_size)]
        obvious = [obvious_tensor(f, tensor.info) for f in files]
        ways = [("ONNX fp32, PIL pixels", fp32, pixels), ("ONNX INT8, PIL pixels", int8, pixels),
                ("the obvious way", tensor, obvious)]
        for name, done, inputs in ways:
            p, ms = scores(done.onnx, inputs)
            rows.append((name, p, ms, done.onnx.stat().st_size))
    threshold = fp32.info["threshold"]
    size = fp32.info["input"]["preprocessing"]["img_size"]
    print(f"{fp32.info['model']} at {size} px, {len(files)} hymenoptera val images; load average "
          f"{load:.2f} at start, {os.getloadavg()[0]:.2f} at end; fp32 export (with its check on "
          f"{fp32.report.images} images) {export_s:.0f} s\n")  # fmt: skip
    print(f"| {'what':<22} | {'max |dP|':>9} | {'same label':>10} | {'accuracy':>8} | {'MB':>5} | "
          f"{'ms/img':>6} |")
    print(f"|{'-' * 24}|{'-' * 10}:|{'-' * 11}:|{'-' * 9}:|{'-' * 6}:|{'-' * 7}:|")
    for name, p, ms, size in rows:
        same = ((p >= threshold) == (reference >= threshold)).mean()
        acc = ((p >= threshold) == truth).mean()
        lat = f"{ms:6.1f}" if ms is not None else f"{'':>6}"
        print(f"| {name:<22} | {np.abs(p - reference).max():9.2g} | {same:10.1%} | {acc:8.1%} | "
              f"{size / 2**20:5.2f} | {lat} |")  # fmt: skip
    (_, p32, ms32, size32), (_, p8, ms8, size8) = rows[1], rows[2]
    acc32, acc8 = ((p32 >= threshold) == truth).mean(), ((p8 >= threshold) == truth).mean()
    print(f"\nINT8 against fp32: {size32 / size8:.2f}x smaller, {ms32 / ms8:.2f}x faster per image, "
          f"accuracy {(acc8 - acc32) * 100:+.1f} points")
    # The checks' own reports, out-of-distribution scores included (what `bincls export` prints).
    print(f"\n{fp32.report.summary()}\n{int8.report.summary()}")

if __name__ == "__main__":
    main()
