"""Does the web export's page give `bincls predict`'s answers? Headless Chromium, file://, network off.

For a run (--run), the web folder is exported (`export_web`, into a temporary folder) and opened from disk
in Debian's Chromium with every request outside the folder refused and the context offline. Then, on
real held-out photos (default: hymenoptera val from ../shared, and every PNG, WebP and ICC-tagged JPEG of
face_mask_dirty, with 20 of its plain JPEGs) and on odd files made here (EXIF orientations 2-8, RGBA,
palette and grey+alpha transparency, CMYK JPEG, 16-bit PNG, animated GIF):

  page, file input    the files given to the page's file input, as a person choosing them; the page's
                      answers read from its result cards
  page, Pillow pixels the same model in the page fed the pixels bincls decodes (load_rgb): the
                      WebAssembly runtime's arithmetic alone
  decoder             Chromium's pixels (createImageBitmap, EXIF orientation, no colour conversion,
                      composited on white) against Pillow's: same size, largest |difference|, share of
                      pixel values that differ

each against `bincls predict` (Predictor.predict_many). With --tflite FILE (needs ai-edge-litert: run it
from a venv with `bincls[mobile]`), the LiteRT file runs on the same photos too.

    BINCLS_SHARED=../shared .venv/bin/python bench/web_parity.py --run RUN [--tflite FILE] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bincls.data.images import load_rgb  # noqa: E402
from bincls.inference.predict import Predictor  # noqa: E402
from bincls.inference.web_export import export_web  # noqa: E402

SHARED = Path(os.environ.get("BINCLS_SHARED") or ROOT.parent / "shared") / "data"


def held_out_photos() -> list[Path]:
    if not SHARED.is_dir():
        print(f"{SHARED} is absent: only the odd files made here are measured (set BINCLS_SHARED)")
        return []
    val = sorted(p for p in (SHARED / "hymenoptera" / "val").rglob("*") if p.is_file())
    odd, plain = [], []
    for p in sorted((SHARED / "face_mask_dirty").rglob("*")):
        if not p.is_file():
            continue
        with Image.open(p) as im:
            kind = (im.format, im.mode, bool(im.info.get("icc_profile")))
        (plain if kind == ("JPEG", "RGB", False) else odd).append(p)
    return val + odd + plain[:: max(1, len(plain) // 20)][:20]


def odd_files(folder: Path) -> list[Path]:
    import imagefactory as f

    folder.mkdir(parents=True, exist_ok=True)
    made = [
        f.jpeg_with_orientation(folder / f"orientation{o}.jpg", w=64, h=40, orientation=o)
        for o in range(2, 9)
    ]
    made += [
        f.rgba_half_transparent(folder / "rgba_half.png", size=(40, 30)),
        f.palette_with_transparency(folder / "palette_transparent.png", size=(40, 30)),
        f.la_image(folder / "grey_alpha.png", size=(40, 30)),
        f.cmyk_jpeg(folder / "cmyk.jpg", size=(40, 30)),
        f.png16(folder / "grey16.png", [0, 1000, 30000, 65535] * 10, rows=30),
        f.animated_gif(folder / "animated.gif", size=(40, 30)),
    ]
    return made


def kind_of(path: Path) -> str:
    try:
        with Image.open(path) as im:
            icc = " ICC" if im.info.get("icc_profile") else ""
            return f"{im.format} {im.mode}{icc}"
    except OSError:
        return "unreadable"


def decoder_row(browser: np.ndarray, pillow: np.ndarray) -> dict:
    if browser.shape != pillow.shape:
        return {"same_size": False, "max_px": None, "share_px": None}
    diff = np.abs(browser.astype(int) - pillow.astype(int))
    return {"same_size": True, "max_px": int(diff.max()), "share_px": float((diff > 0).mean())}


def tflite_scores(path: str, files: list[Path], size: int) -> dict[str, float]:
    from ai_edge_litert.interpreter import Interpreter

    from bincls.inference.mobile_check import resized_pixels

    runner = Interpreter(model_path=path, num_threads=1).get_signature_runner()
    return {
        str(f): float(
            runner(image=resized_pixels(np.asarray(load_rgb(f)), size)[None])["probabilities"][0, 1]
        )
        for f in files
    }


def measure(run: Path, files: list[Path], out: Path, tflite: str | None) -> dict:
    from web_page import classify_pixels, classify_with_file_input, offline_page

    start = time.time()
    done = export_web(run, out / "web", make_zip=True)
    print(
        f"exported in {time.time() - start:.0f} s: {done.folder} ({done.size_bytes / 2**20:.1f} MB, "
        f"zip {done.zip.stat().st_size / 2**20:.1f} MB)"
    )
    from bincls.inference.evaluate import find_checkpoint

    predictor = Predictor(find_checkpoint(run)[0], device="cpu")
    expected = {str(f): p for f, p in zip(files, predictor.predict_many([str(f) for f in files]))}
    rows = []
    with offline_page(done.folder, timeout_s=600) as web:
        from web_page import browser_pixels

        start = time.time()
        answers = []
        for i in range(0, len(files), 25):
            answers += classify_with_file_input(web.page, files[i : i + 25])
        seconds = time.time() - start
        for f, a in zip(files, answers):
            e = expected[str(f)]
            row = {"file": str(f), "kind": kind_of(f), "predict_error": e.error, "page_error": a["error"]}
            if e.error is None and a["error"] is None:
                pillow = np.asarray(load_rgb(f))
                via_pillow = classify_pixels(web.page, pillow)
                row.update(
                    dP=abs(a["p_class1"] - e.p_class1),
                    same_label=a["class_name"] == e.class_name,
                    same_ood=a["ood"] == json.dumps(e.ood),
                    dP_pillow_pixels=abs(via_pillow["p_class1"] - e.p_class1),
                    **decoder_row(browser_pixels(web.page, f), pillow),
                )
            rows.append(row)
    assert not web.refused and not web.errors, (web.refused, web.errors)
    if tflite:
        scores = tflite_scores(
            tflite, [f for f in files if expected[str(f)].error is None], predictor.preprocess.img_size
        )
        for row in rows:
            if row["file"] in scores:
                e = expected[row["file"]]
                p = scores[row["file"]]
                row.update(
                    dP_tflite=abs(p - e.p_class1),
                    same_label_tflite=(p >= predictor.threshold) == (e.p_class1 >= predictor.threshold),
                )
    return {"rows": rows, "page_seconds": seconds, "requests_refused": web.refused, "offline": True}


def report(result: dict) -> None:
    rows = result["rows"]
    scored = [r for r in rows if "dP" in r]
    print(
        f"\n{len(rows)} files, {len(scored)} scored by both; "
        f"requests refused: {len(result['requests_refused'])}; "
        f"page: {result['page_seconds']:.1f} s for all files (file input, one thread)"
    )
    groups: dict[str, list] = {}
    for r in scored:
        groups.setdefault(r["kind"], []).append(r)
    print(
        f"{'kind':<26}{'n':>4}{'max dP':>10}{'labels':>9}{'ood':>6}{'dP Pillow px':>14}{'same size':>10}"
        f"{'max |px|':>9}{'px differ':>10}"
    )
    for kind, rs in sorted(groups.items(), key=lambda kv: -len(kv[1])) + [("ALL", scored)]:
        sizes = [r for r in rs if r["same_size"]]
        print(
            f"{kind:<26}{len(rs):>4}{max(r['dP'] for r in rs):>10.2g}"
            f"{sum(r['same_label'] for r in rs):>5}/{len(rs):<3}{sum(r['same_ood'] for r in rs):>5}"
            f"{max(r['dP_pillow_pixels'] for r in rs):>14.2g}{len(sizes):>6}/{len(rs):<3}"
            f"{max((r['max_px'] for r in sizes), default=0):>9}"
            f"{np.mean([r['share_px'] for r in sizes]) if sizes else 0:>10.1%}"
        )
    if any("dP_tflite" in r for r in scored):
        t = [r for r in scored if "dP_tflite" in r]
        print(
            f"LiteRT on the same {len(t)} files: max dP {max(r['dP_tflite'] for r in t):.2g}, "
            f"same label {sum(r['same_label_tflite'] for r in t)}/{len(t)}"
        )
    for r in rows:
        if "dP" not in r:
            print(f"not scored: {Path(r['file']).name}: predict {r['predict_error']}; page {r['page_error']}")
        elif not r["same_label"] or r["dP"] > 0.002:
            print(f"differs: {Path(r['file']).name} ({r['kind']}): dP {r['dP']:.3g}, max |px| {r['max_px']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True, help="a run folder")
    parser.add_argument(
        "--tflite", help="also run this LiteRT file (an export of the same run) on the photos"
    )
    parser.add_argument("--out", help="keep the web folder and the JSON of every row here")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        files = held_out_photos() + odd_files(out / "odd")
        result = measure(Path(args.run), files, out, args.tflite)
        (out / "web_parity.json").write_text(json.dumps(result, indent=1))
    report(result)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
