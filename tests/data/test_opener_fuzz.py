"""Whatever a file holds, the image opener answers with a reason and never with an escaping exception or a
hang (issue 16 class 3): the files the issue found, then real images of every accepted format mutated at
random (seeded), every case through every decode path, in a child process with a time limit."""

from __future__ import annotations

import io
import json
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import hostile
import imagefactory as fac
import numpy as np
import pytest
from PIL import Image

from bincls.data.dataset import scan_folders
from bincls.data.images import ImageProblem, inspect_file, load_rgb
from bincls.inference.predict import Predictor, expand_inputs
from bincls.paths import SAMPLE_DATA

CHILD = Path(__file__).resolve().parents[1] / "decode_child.py"

# The cases the issue found: each made `predict` on a folder exit with a traceback.
MALFORMED = {
    "short-ihdr.png": (hostile.short_ihdr_png, "truncated or corrupt"),
    "profile-bomb.png": (hostile.iccp_bomb_png, "truncated or corrupt"),
    "small.ppm.jpg": (hostile.bad_ppm, "unsupported format (PPM)"),
    "small.dds.jpg": (hostile.bad_dds, "unsupported format (DDS)"),
    "small.tif": (hostile.bad_tiff, "truncated or corrupt"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_each_malformed_file_of_the_issue_has_a_reason(tmp_path, name):
    make, reason = MALFORMED[name]
    path = fac.write_bytes(tmp_path / name, make())
    for call, arg, kwargs in ((inspect_file, path, {}), (load_rgb, path, {"max_side": 32}),
                              (load_rgb, path.read_bytes(), {})):  # fmt: skip
        with pytest.raises(ImageProblem) as info:
            call(arg, **kwargs)
        assert info.value.reason.startswith(reason), info.value.reason


@pytest.fixture
def malformed_folder(tmp_path) -> Path:
    folder = tmp_path / "photos"
    for name, (make, _) in MALFORMED.items():
        fac.write_bytes(folder / name, make())
    fac.make_folder(folder, 3, seed=7)
    return folder


def test_the_scan_lists_them_and_keeps_the_good_images(malformed_folder, tmp_path):
    fac.make_folder(tmp_path / "other", 3, seed=70)
    scan = scan_folders([malformed_folder, tmp_path / "other"])
    assert len(scan.images) == 6
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    for name, (_, reason) in MALFORMED.items():
        assert reasons[name].startswith(reason)


def test_predict_on_the_folder_answers_for_every_file(malformed_folder, trained_sample_run):
    """As `bincls predict FOLDER` and the Predict page's folder tab do (the CLI itself: test_file_access)."""
    preds = Predictor(trained_sample_run / "best.pt").predict_many(expand_inputs([malformed_folder]))
    errors = {Path(p.source).name: p.error for p in preds}
    for name, (_, reason) in MALFORMED.items():
        assert errors[name].startswith(reason)
    assert sum(e is None for e in errors.values()) == 3


# Fuzzing ---------------------------------------------------------------------------------------------
def _seeds() -> dict[str, bytes]:
    """One real photo (an ant from the sample), small, in every accepted format and the modes that take
    other code paths (alpha, palette with transparency, 16-bit, progressive, EXIF rotation, MPO)."""
    photo = Image.open(sorted((SAMPLE_DATA / "ants").iterdir())[0]).convert("RGB")
    photo.thumbnail((40, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    rgba = photo.convert("RGBA")
    rgba.putalpha(128)
    grey16 = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    mpo = io.BytesIO()
    photo.save(mpo, "MPO", save_all=True, append_images=[photo.rotate(90)])
    return {
        "baseline.jpg": hostile.saved(photo, "JPEG", quality=85),
        "progressive.jpg": hostile.saved(photo, "JPEG", quality=85, progressive=True),
        "rotated.jpg": hostile.saved(photo, "JPEG", exif=exif.tobytes()),
        "cmyk.jpg": hostile.saved(photo.convert("CMYK"), "JPEG"),
        "camera.mpo": mpo.getvalue(),
        "rgb.png": hostile.saved(photo, "PNG"),
        "rgba.png": hostile.saved(rgba, "PNG"),
        "palette.png": hostile.saved(photo.convert("P"), "PNG", transparency=0),
        "grey16.png": hostile.saved(grey16, "PNG"),
        "rgb.bmp": hostile.saved(photo, "BMP"),
        "palette.gif": hostile.saved(photo.convert("P"), "GIF"),
        "lossy.webp": hostile.saved(photo, "WEBP", quality=80),
        "alpha.webp": hostile.saved(rgba, "WEBP", lossless=True),
        "raw.tif": hostile.saved(photo, "TIFF"),
        "lzw.tif": hostile.saved(photo, "TIFF", compression="tiff_lzw"),
        "deflate-rotated.tif": hostile.saved(
            photo, "TIFF", compression="tiff_adobe_deflate", exif=exif.tobytes()
        ),
        "grey16.tif": hostile.saved(grey16, "TIFF"),
    }


def _png_with_header(data: bytes, rng: random.Random) -> bytes:
    """A PNG whose IHDR says something else (size, depth, colour type), with a correct CRC so the
    parser believes it and goes on to the pixels."""
    w = rng.choice([0, 1, 7, 2**16, 2**31 - 1, rng.randrange(1, 5000)])
    h = rng.choice([0, 1, 9, 2**16, 2**31 - 1, rng.randrange(1, 5000)])
    depth, colour = rng.choice([1, 2, 4, 8, 16, 3, 0]), rng.choice([0, 2, 3, 4, 6, 1, 7])
    body = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, rng.choice([0, 1]))
    return data[:8] + hostile.png_chunk(b"IHDR", body) + data[33:]


def _mutate(data: bytes, rng: random.Random, png: bool) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(7 if png else 6)
    if kind == 0:  # flip bytes anywhere
        for _ in range(rng.randint(1, 16)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # overwrite a span with extremes or noise
        at, n = rng.randrange(len(b)), rng.randint(1, 64)
        fill = rng.choice([b"\xff", b"\x00", b"\x7f"])
        b[at : at + n] = fill * n if rng.random() < 0.5 else bytes(rng.randrange(256) for _ in range(n))
    elif kind == 2:  # cut
        del b[rng.randrange(1, len(b)) :]
    elif kind == 3:  # insert
        at = rng.randrange(len(b))
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    elif kind == 4:  # repeat a span
        at = rng.randrange(len(b))
        b[at:at] = b[at : at + rng.randint(1, 256)] * rng.randint(1, 8)
    elif kind == 5:  # the header: sizes, tags, offsets live in the first bytes
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(min(len(b), 96))] = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    else:
        return _png_with_header(data, rng)
    return bytes(b)


CASES_PER_SEED = 300  # x 17 seeds = 5,100 files, each through four decode paths: about 6 s here


def test_fuzzed_files_of_every_accepted_format_only_ever_give_reasons(tmp_path):
    rng = random.Random(16)
    folder = tmp_path / "fuzz"
    paths = []
    for name, data in _seeds().items():
        for i in range(CASES_PER_SEED):
            mutated = _mutate(data, rng, png=name.endswith(".png"))
            paths.append(str(fac.write_bytes(folder / f"{i:03d}-{name}", mutated)))
    lines = []
    try:
        out = subprocess.run([sys.executable, str(CHILD), "fuzz", *paths], capture_output=True, text=True,
                             timeout=300)  # fmt: skip
        lines = out.stdout.splitlines()
    except subprocess.TimeoutExpired as exc:
        started = [ln for ln in (exc.stdout or b"").decode().splitlines() if ln.startswith("start ")]
        pytest.fail(f"the opener hung on {started[-1][6:] if started else '?'}")
    assert out.returncode == 0, out.stderr[-3000:]
    results = [json.loads(ln) for ln in lines if ln.startswith("{")]
    assert len(results) == len(paths)
    escaped = [(r["path"], k, v) for r in results for k, v in r.items() if "ESCAPED" in str(v)]
    assert not escaped, escaped[:10]
    out_of_memory = [r["path"] for r in results if "ran out of memory" in json.dumps(r)]
    assert not out_of_memory, "the cost model let through a decode the memory limit stopped"
    slow = [(r["path"], round(r["seconds"], 1)) for r in results if r["seconds"] > 5]
    assert not slow, slow
    verdicts = {r["inspect"].split(" (")[0] for r in results}
    assert "ok" in verdicts and len(verdicts) > 3, verdicts  # the mutations reach more than one outcome


def test_a_zlib_bomb_in_a_text_chunk_is_a_reason_not_a_crash(tmp_path):
    """PNG text chunks are decompressed while the header is read: Pillow stops at its own limit."""
    comp = zlib.compressobj(9)
    text = b"Comment\0\0" + comp.compress(b"A" * (64 * 2**20)) + comp.flush()
    png = bytearray(fac.encode(fac.rgb_image(), "PNG"))
    png[33:33] = hostile.png_chunk(b"zTXt", text)
    path = fac.write_bytes(tmp_path / "text-bomb.png", bytes(png))
    try:
        info = inspect_file(path)
    except ImageProblem as p:
        assert p.reason.startswith("truncated or corrupt")
    else:
        assert info.width == 24  # Pillow skipped the oversized text: also fine
