"""One file at a time: which files are images, why the others are not, and how every mode becomes RGB."""

from __future__ import annotations

import io
import os
import time

import imagefactory as fac
import numpy as np
import pytest
from PIL import Image

import bincls.data.images as images
from bincls.data.images import BACKGROUND, ImageProblem, inspect_file, is_junk_name, load_rgb
from bincls.errors import BinclsError

FORMATS = ["JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF"]


def pixels(path) -> np.ndarray:
    return np.asarray(load_rgb(path), dtype=np.int16)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_accepted_format_decodes_to_rgb(tmp_path, fmt):
    path = fac.save(fac.rgb_image(24, 16), tmp_path / f"img.{fmt.lower()}", fmt)
    info = inspect_file(path)
    img = load_rgb(path)
    assert info.format == fmt
    assert (info.width, info.height) == (24, 16) == img.size
    assert img.mode == "RGB"
    assert info.size == path.stat().st_size
    assert info.pixels > 0


ODD_NAMES = [
    ("png_named.jpg", "PNG"),
    ("jpeg_named.txt", "JPEG"),
    ("no_extension", "JPEG"),
    ("webp.jpg_1088Wx1632H", "WEBP"),
]


@pytest.mark.parametrize("name, fmt", ODD_NAMES)
def test_format_comes_from_content_not_extension(tmp_path, name, fmt):
    path = fac.save(fac.rgb_image(), tmp_path / name, fmt)
    assert inspect_file(path).format == fmt
    assert load_rgb(path).size == (24, 16)


def test_gif_uses_first_frame(tmp_path):
    path = fac.animated_gif(tmp_path / "anim.gif", colours=((255, 0, 0), (0, 0, 255)))
    assert Image.open(path).n_frames == 2
    assert tuple(pixels(path)[0, 0]) == (255, 0, 0)


def test_tiff_uses_first_page(tmp_path):
    path = fac.multipage_tiff(tmp_path / "pages.tif", colours=((0, 255, 0), (255, 0, 0)))
    assert Image.open(path).n_frames == 2
    assert tuple(pixels(path)[0, 0]) == (0, 255, 0)


# (factory, expected start of the reason)
PROBLEMS = {
    "empty.jpg": (lambda p: fac.write_bytes(p, b""), "empty file"),
    "notes.jpg": (fac.text_file, "not an image"),
    "half.jpg": (fac.truncated_jpeg, "truncated or corrupt"),
    "garbage.png": (fac.png_with_garbage, "truncated or corrupt"),
    "photo.heic": (fac.fake_heic, "unsupported format (HEIC)"),
    "drawing.svg": (fac.svg, "unsupported format (SVG)"),
    "bomb.png": (fac.png_bomb, "too large"),
}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_unusable_file_gives_readable_reason(tmp_path, name):
    make, reason = PROBLEMS[name]
    path = make(tmp_path / name)
    with pytest.raises(ImageProblem) as exc:
        inspect_file(path)
    assert exc.value.reason.startswith(reason)
    assert exc.value.path == str(path)
    # load_rgb (datasets, prediction) refuses the same files; the empty one fails at open
    with pytest.raises(ImageProblem):
        load_rgb(path)


def test_smooth_jpeg_cut_in_half_is_truncated_not_unreadable(tmp_path):
    # Pillow raises "Truncated File Read" at open for this one: that is corruption, not a disk error.
    im = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8), (48, 1))).convert("RGB")
    data = fac.encode(im, "JPEG")
    path = fac.write_bytes(tmp_path / "half.jpg", data[: len(data) // 2])
    with pytest.raises(ImageProblem, match="truncated or corrupt"):
        inspect_file(path)


@pytest.mark.parametrize("make", [fac.png_with_garbage, fac.truncated_png], ids=["garbage", "truncated"])
def test_corrupt_png_is_refused_by_the_scan_check(tmp_path, make):
    # Regression: reading the EXIF of a PNG decodes it, and that decode error used to be swallowed,
    # so the later decode saw a "loaded" (half-garbage) image and passed it.
    path = make(tmp_path / "broken.png")
    with pytest.raises(ImageProblem, match="truncated or corrupt"):
        inspect_file(path)


def test_dangling_symlink_is_named(tmp_path):
    link = tmp_path / "gone.jpg"
    os.symlink(tmp_path / "missing.jpg", link)
    with pytest.raises(ImageProblem, match="dangling link"):
        inspect_file(link)


def test_decompression_bomb_refused_from_header_without_decoding(tmp_path, monkeypatch):
    path = fac.png_bomb(tmp_path / "bomb.png", 20000, 20000)
    assert path.stat().st_size < 200  # the file is tiny; decoding it would need 1.2 GB

    def must_not_decode(*args, **kwargs):
        raise AssertionError("the bomb reached the decoder")

    monkeypatch.setattr(images, "_decode", must_not_decode)
    start = time.perf_counter()
    with pytest.raises(ImageProblem, match="too large"):
        inspect_file(path)
    with pytest.raises(ImageProblem, match="too large"):
        load_rgb(path)
    assert time.perf_counter() - start < 2.0


def test_bomb_just_over_the_limit_is_refused_too(tmp_path):
    # between our limit and Pillow's own 2x error limit, Pillow only warns
    side = int((images.MAX_PIXELS * 1.2) ** 0.5)
    path = fac.png_bomb(tmp_path / "bomb.png", side, side)
    with pytest.raises(ImageProblem, match="too large"):
        inspect_file(path)


def test_palette_transparency_becomes_white(tmp_path):
    path = fac.palette_with_transparency(tmp_path / "p.png")
    assert inspect_file(path).mode == "P"
    arr = pixels(path)
    assert tuple(arr[0, 0]) == BACKGROUND  # transparent index
    assert tuple(arr[0, -1]) == (255, 0, 0)  # opaque index


def test_rgba_transparent_pixels_become_white(tmp_path):
    path = fac.rgba_half_transparent(tmp_path / "rgba.png", colour=(0, 0, 255))
    assert inspect_file(path).mode == "RGBA"
    arr = pixels(path)
    assert tuple(arr[0, 0]) == BACKGROUND
    assert tuple(arr[0, -1]) == (0, 0, 255)


def test_la_transparent_pixels_become_white(tmp_path):
    path = fac.la_image(tmp_path / "la.png", grey=40)
    assert inspect_file(path).mode == "LA"
    arr = pixels(path)
    assert tuple(arr[0, 0]) == BACKGROUND
    assert tuple(arr[-1, 0]) == (40, 40, 40)


@pytest.mark.parametrize("mode, transparent, opaque", [("L", 0, 200), ("RGB", (0, 0, 0), (200, 0, 0))])
def test_single_colour_transparency_becomes_white(tmp_path, mode, transparent, opaque):
    im = Image.new(mode, (4, 1), transparent)
    im.putpixel((3, 0), opaque)
    path = fac.save(im, tmp_path / "trns.png", "PNG", transparency=transparent)
    arr = pixels(path)
    assert tuple(arr[0, 0]) == BACKGROUND
    assert tuple(arr[0, 3]) == tuple(np.broadcast_to(opaque, 3))


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = fac.solid(tmp_path / "grey.png", 77, mode="L")
    assert inspect_file(path).mode == "L"
    assert (pixels(path) == 77).all()


def test_16_bit_values_are_scaled_not_clipped(tmp_path):
    path = fac.png16(tmp_path / "deep.png", [0, 32768, 65535, 255])
    assert inspect_file(path).mode.startswith("I;16")
    row = pixels(path)[0, :, 0]
    assert row[0] == 0
    assert abs(int(row[1]) - 128) <= 1
    assert row[2] == 255
    assert row[3] <= 1  # 255 of 65535 is nearly black, not white as clipping would give


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = fac.cmyk_jpeg(tmp_path / "cmyk.jpg", cmyk=(0, 255, 255, 0))  # magenta + yellow ink = red
    assert inspect_file(path).mode == "CMYK"
    img = load_rgb(path)
    assert img.mode == "RGB"
    r, g, b = np.asarray(img, dtype=np.int16).reshape(-1, 3).mean(0)
    assert r > 230 and g < 30 and b < 30


def test_exif_orientation_is_applied(tmp_path):
    # 40x20 with a red left half and a blue right half; orientation 6 = rotate 90 degrees clockwise
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = fac.save(Image.fromarray(arr), tmp_path / "rotated.jpg", "JPEG", exif=exif.tobytes(), quality=95)
    assert Image.open(path).size == (40, 20)

    img = load_rgb(path)
    info = inspect_file(path)
    assert img.size == (20, 40)
    assert (info.width, info.height) == (20, 40)
    shown = np.asarray(img, dtype=np.int16)
    assert shown[2, 10, 0] > 200 and shown[2, 10, 2] < 60  # the left (red) half is now on top
    assert shown[-3, 10, 2] > 200 and shown[-3, 10, 0] < 60


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_rotation_swaps_size_in_every_format(tmp_path, fmt):
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise
    path = fac.save(fac.rgb_image(30, 10), tmp_path / f"r.{fmt.lower()}", fmt, exif=exif.tobytes())
    info = inspect_file(path)
    assert (info.width, info.height) == (10, 30) == load_rgb(path).size


def test_max_side_decodes_large_jpeg_smaller_but_not_below_it(tmp_path):
    path = fac.jpeg(tmp_path / "big.jpg", 800, 600)
    small = load_rgb(path, max_side=100)
    assert min(small.size) >= 100
    assert small.size[0] < 800
    assert load_rgb(path).size == (800, 600)


def test_load_rgb_reads_bytes_and_file_objects(tmp_path):
    path = fac.png(tmp_path / "a.png")
    data = path.read_bytes()
    expected = np.asarray(load_rgb(path))
    assert np.array_equal(np.asarray(load_rgb(data)), expected)
    assert np.array_equal(np.asarray(load_rgb(io.BytesIO(data))), expected)
    with pytest.raises(ImageProblem, match="upload"):
        load_rgb(b"not an image at all")


def test_inspect_reports_hash_and_stats(tmp_path):
    a = fac.solid(tmp_path / "red.png", (255, 0, 0))
    b = fac.write_bytes(tmp_path / "copy.bin", a.read_bytes())
    ia, ib = inspect_file(a), inspect_file(b)
    assert ia.sha256 == ib.sha256
    assert ia.channel_sum == (ia.pixels, 0.0, 0.0)
    assert ia.channel_sqsum == (ia.pixels, 0.0, 0.0)


@pytest.mark.parametrize("name", [".DS_Store", "Thumbs.db", "desktop.ini", "._foo.jpg", ".x.png"])
def test_junk_names(name):
    assert is_junk_name(name)


@pytest.mark.parametrize("name", ["ant.jpg", "DS_Store.jpg", "thumbs.jpg", "photo._1.jpg"])
def test_ordinary_names_are_not_junk(name):
    assert not is_junk_name(name)


def test_image_problem_is_a_bincls_error_naming_the_file():
    err = ImageProblem("/data/x.jpg", "empty file (0 bytes)")
    assert isinstance(err, BinclsError)
    assert "/data/x.jpg" in str(err) and "empty file" in str(err)
