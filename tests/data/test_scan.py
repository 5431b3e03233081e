"""The scan: every file checked once, every unused file listed with its reason, duplicates, stats,
the cache, the promise never to write to a user's folders, and the real data sets."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import imagefactory as fac
import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

import bincls.data.images as images
import bincls.data.scan as scan_mod
from bincls.data.dataset import ImageFileDataset, load_data, scan_folders
from bincls.data.images import inspect_file
from bincls.data.scan import ImageRecord, ScanCache, find_duplicates
from bincls.data.split import make_split, save_split, split_counts
from bincls.data.transforms import Preprocess, build_eval_transform, build_train_transform


def two_classes(tmp_path: Path, n: int = 4) -> tuple[Path, Path]:
    a, b = tmp_path / "data" / "a", tmp_path / "data" / "b"
    fac.make_folder(a, n, seed=0)
    fac.make_folder(b, n, seed=1000)
    return a, b


@pytest.fixture
def decode_counter(monkeypatch):
    """Counts pixel decodes per file name (the scan runs them in threads)."""
    calls: list[str] = []
    lock = threading.Lock()
    real = images._decode

    def counting(im, name, *args, **kwargs):
        with lock:
            calls.append(os.fspath(name))
        return real(im, name, *args, **kwargs)

    monkeypatch.setattr(images, "_decode", counting)
    return calls


def test_scan_is_recursive_and_reads_content_not_extension(tmp_path):
    a, b = two_classes(tmp_path, 2)
    nested = [
        fac.save(fac.rgb_image(seed=1), a / "x" / "y" / "z" / "deep.png", "PNG"),
        fac.save(fac.rgb_image(seed=2), a / "x" / "png_named.jpg", "PNG"),
        fac.save(fac.rgb_image(seed=3), a / "jpeg_named.txt", "JPEG"),
        fac.save(fac.rgb_image(seed=4), a / "no_extension", "JPEG"),
        fac.save(fac.rgb_image(seed=5), a / "UPPER.JPEG", "JPEG"),
    ]
    result = scan_folders([a, b])
    paths = {r.path: r for r in result.images}
    assert result.skipped == []
    assert result.class_counts() == [2 + len(nested), 2]
    for p in nested:
        assert paths[str(p)].label == 0
    assert paths[str(nested[1])].format == "PNG"
    assert paths[str(nested[2])].format == "JPEG"


def test_every_accepted_format_is_scanned(tmp_path):
    a = tmp_path / "a"
    for i, fmt in enumerate(["JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF"]):
        fac.save(fac.rgb_image(seed=i), a / f"f{i}.img", fmt)
    fac.animated_gif(a / "anim.gif")
    fac.multipage_tiff(a / "pages.tiff")
    _, b = two_classes(tmp_path, 1)
    result = scan_folders([a, b])
    assert result.skipped == []
    formats = sorted(r.format for r in result.images if r.label == 0)
    assert formats == ["BMP", "GIF", "GIF", "JPEG", "PNG", "TIFF", "TIFF", "WEBP"]


def make_zoo(folder: Path) -> dict[str, str]:
    """Every kind of unusable file, beside good ones; returns {path: expected reason start}."""
    expected = {
        fac.write_bytes(folder / "empty.jpg", b""): "empty file",
        fac.text_file(folder / "notes.txt"): "not an image",
        fac.text_file(folder / "readme.jpg"): "not an image",
        fac.truncated_jpeg(folder / "half.jpg"): "truncated or corrupt",
        fac.png_with_garbage(folder / "sub" / "garbage.png"): "truncated or corrupt",
        fac.truncated_png(folder / "cut.png"): "truncated or corrupt",
        fac.fake_heic(folder / "IMG_0001.HEIC"): "unsupported format (HEIC)",
        fac.svg(folder / "logo.svg"): "unsupported format (SVG)",
        fac.png_bomb(folder / "bomb.png"): "too large",
        fac.write_bytes(folder / ".DS_Store", b"\x00\x00\x00\x01Bud1"): "hidden or system file",
        fac.write_bytes(folder / "Thumbs.db", b"\xd0\xcf\x11\xe0"): "hidden or system file",
        fac.jpeg(folder / "._photo.jpg"): "hidden or system file",  # a macOS resource fork
    }
    link = folder / "moved.jpg"
    os.symlink(folder / "was_here.jpg", link)
    expected[link] = "dangling link"
    fac.jpeg(folder / ".thumbnails" / "t.jpg")
    expected[folder / ".thumbnails"] = "hidden or system folder"
    fac.jpeg(folder / "__MACOSX" / "x.jpg")
    expected[folder / "__MACOSX"] = "hidden or system folder"
    return {str(p): r for p, r in expected.items()}


def test_every_unused_file_is_listed_with_a_readable_reason(tmp_path):
    a, b = two_classes(tmp_path, 3)
    expected = make_zoo(a)
    start = time.perf_counter()
    result = scan_folders([a, b])
    assert time.perf_counter() - start < 5.0  # the bomb is refused from its header
    got = {s.path: s.reason for s in result.skipped}
    assert set(got) == set(expected)
    for path, reason in expected.items():
        assert got[path].startswith(reason), (path, got[path])
    assert result.class_counts() == [3, 3]  # the good images are all there
    assert [s.path for s in result.skipped] == sorted(got)


def test_names_that_are_not_utf8_are_listed_not_crashed_on(tmp_path):
    a, b = two_classes(tmp_path, 3)
    try:  # an old zip's Latin-1 names: bytes that are not UTF-8
        fac.png(os.fsdecode(os.fsencode(a) + b"/caf\xe9.png"), seed=7)
        os.mkdir(os.fsencode(b) + b"/\xe9t\xe9")
    except (OSError, UnicodeError):
        pytest.skip("this file system does not store names that are not UTF-8")
    fac.png(os.fsdecode(os.fsencode(b) + b"/\xe9t\xe9/x.png"), seed=8)
    result = scan_folders([a, b])
    assert result.class_counts() == [3, 3]
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons == {
        f"{a}/caf\ufffd.png": "file name is not UTF-8 (rename it to use it)",
        f"{b}/\ufffdt\ufffd": "folder name is not UTF-8 (not scanned)",
    }
    save_split(make_split(result), tmp_path / "split.csv")  # the split table can be written


def test_every_file_is_decoded_once(tmp_path, decode_counter, monkeypatch):
    a, b = two_classes(tmp_path, 5)
    fac.truncated_jpeg(a / "half.jpg")
    fac.png_with_garbage(b / "garbage.png")
    checked: list[str] = []
    real_inspect = scan_mod.inspect_file

    def counting_inspect(path):
        checked.append(os.fspath(path))
        return real_inspect(path)

    monkeypatch.setattr(scan_mod, "inspect_file", counting_inspect)
    result = scan_folders([a, b])
    files = sorted(str(p) for p in tmp_path.rglob("*") if p.is_file())
    assert sorted(checked) == files
    assert sorted(decode_counter) == files
    assert len(result.images) == 10 and len(result.skipped) == 2


def test_duplicates_within_a_class_are_kept_once(tmp_path):
    a, b = two_classes(tmp_path, 3)
    original = a / "img000.png"
    copies = [fac.write_bytes(a / "sub" / "copy.png", original.read_bytes()), a / "zz_copy.png"]
    copies[1].write_bytes(original.read_bytes())
    result = scan_folders([a, b])
    group = sorted([str(original), *map(str, copies)])
    assert result.duplicates == [group]
    assert result.conflicts == []
    kept = [p for p in group if p not in result.excluded]
    assert len(kept) == 1
    for p in group:
        if p != kept[0]:
            assert result.excluded[p] == f"duplicate of {kept[0]}"
    assert result.class_counts() == [5, 3]
    assert result.class_counts(usable_only=True) == [3, 3]
    table = make_split(result)
    assert set(table["path"]) == {r.path for r in result.usable}
    assert kept[0] in set(table["path"])


def test_duplicates_across_classes_are_a_label_conflict(tmp_path):
    a, b = two_classes(tmp_path, 4)
    shared = fac.write_bytes(b / "same_as_a.png", (a / "img001.png").read_bytes())
    result = scan_folders([a, b], class_names=["cat", "dog"])
    group = sorted([str(a / "img001.png"), str(shared)])
    assert result.conflicts == [group]
    assert result.duplicates == [group]
    for p in group:
        assert result.excluded[p].startswith("label conflict")
        assert "cat" in result.excluded[p] and "dog" in result.excluded[p]
    assert result.class_counts(usable_only=True) == [3, 4]
    assert not set(make_split(result)["path"]) & set(group)


def test_duplicates_never_straddle_given_splits(tmp_path):
    root = tmp_path / "ds"
    for split, n in (("train", 5), ("val", 3)):
        for k, cls in enumerate(("ants", "bees")):
            fac.make_folder(root / split / cls, n, seed=1000 * k + 100 * (split == "val"))
    train_copy = root / "train" / "ants" / "img002.png"
    val_copy = fac.write_bytes(root / "val" / "ants" / "copied.png", train_copy.read_bytes())
    result = scan_folders([root])
    assert result.duplicates == [sorted([str(train_copy), str(val_copy)])]
    assert result.excluded == {str(val_copy): f"duplicate of {train_copy}"}
    table = make_split(result)
    assert str(val_copy) not in set(table["path"])
    assert table.loc[table["path"] == str(train_copy), "split"].tolist() == ["train"]
    assert split_counts(table, result.class_names)["val"] == {"ants": 3, "bees": 3}


def test_find_duplicates_keeps_the_earliest_split():
    def rec(path, split, label=0, sha="x"):
        return ImageRecord(path, label, split, 1, 1, "RGB", "PNG", 1, sha)

    recs = [rec("/t/z.png", "test"), rec("/v/y.png", "val"), rec("/tr/x.png", "train")]
    recs.append(rec("/u.png", "val", sha="unique"))
    dups, conflicts, excluded = find_duplicates(recs, ["a", "b"])
    assert dups == [["/tr/x.png", "/v/y.png", "/t/z.png"]]
    assert conflicts == []
    assert excluded == {"/v/y.png": "duplicate of /tr/x.png", "/t/z.png": "duplicate of /tr/x.png"}


def test_stats_counts_sizes_modes_and_channel_mean_std(tmp_path):
    a, b = tmp_path / "reds", tmp_path / "blues"
    # solid colours in two sizes (so no file repeats): mean and std of each channel are known
    for size in ((8, 8), (9, 9)):
        fac.solid(a / f"r{size[0]}.png", (255, 0, 0), size=size)
        fac.solid(b / f"b{size[0]}.png", (0, 0, 255), size=size)
    result = scan_folders([a, b])
    assert result.class_counts() == [2, 2]
    assert result.mode_counts() == {"RGB": 4}
    assert {(r.width, r.height) for r in result.images} == {(8, 8), (9, 9)}
    assert all(r.size == os.path.getsize(r.path) for r in result.images)
    np.testing.assert_allclose(result.channel_mean, (0.5, 0.0, 0.5), atol=1e-9)
    np.testing.assert_allclose(result.channel_std, (0.5, 0.0, 0.5), atol=1e-9)
    out = result.to_dict()
    assert [c["images"] for c in out["classes"]] == [2, 2]
    assert out["channel_mean"] == list(result.channel_mean)
    assert out["modes"] == {"RGB": 4}


def test_modes_are_counted_as_stored(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    fac.solid(a / "grey.png", 10, mode="L")
    fac.palette_with_transparency(a / "pal.png")
    fac.rgba_half_transparent(a / "rgba.png")
    fac.cmyk_jpeg(b / "cmyk.jpg")
    fac.png16(b / "deep.png", list(range(8)), rows=8)  # (a 1-row image is too thin to train on)
    fac.png(b / "rgb.png")
    result = scan_folders([a, b])
    assert result.mode_counts() == {"L": 1, "P": 1, "RGBA": 1, "CMYK": 1, "I;16": 1, "RGB": 1}


def test_exif_rotated_size_is_in_the_scan_record(tmp_path):
    a, b = two_classes(tmp_path, 1)
    path = fac.jpeg_with_orientation(a / "rot.jpg", 40, 20, orientation=6)
    rec = {r.path: r for r in scan_folders([a, b]).images}[str(path)]
    assert (rec.width, rec.height) == (20, 40)


# ---- the cache ----


def test_rescan_reuses_the_cache_and_rechecks_touched_files(tmp_path, decode_counter):
    a, b = two_classes(tmp_path, 4)
    fac.truncated_jpeg(a / "half.jpg")  # failures are cached too
    n_files = 9
    first = scan_folders([a, b])
    assert first.from_cache == 0
    assert len(decode_counter) == n_files

    decode_counter.clear()
    second = scan_folders([a, b])
    assert second.from_cache == n_files
    assert decode_counter == []
    assert second.images == first.images and second.skipped == first.skipped

    touched = a / "img001.png"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    third = scan_folders([a, b])
    assert third.from_cache == n_files - 1
    assert decode_counter == [str(touched)]

    # new content and a new size: the new verdict replaces the cached one
    decode_counter.clear()
    fac.text_file(a / "img002.png")
    fourth = scan_folders([a, b])
    assert fourth.from_cache == n_files - 1
    assert {s.path: s.reason for s in fourth.skipped}[str(a / "img002.png")].startswith("not an image")

    assert scan_folders([a, b], use_cache=False).from_cache == 0


def test_transient_failures_are_not_cached(tmp_path, monkeypatch):
    a, b = two_classes(tmp_path, 2)
    flaky = str(a / "img000.png")
    real = scan_mod.inspect_file

    def failing_once(path):
        if os.fspath(path) == flaky:
            raise PermissionError(13, "Permission denied", flaky)
        return real(path)

    monkeypatch.setattr(scan_mod, "inspect_file", failing_once)
    first = scan_folders([a, b])
    assert [s.path for s in first.skipped] == [flaky]
    assert first.skipped[0].reason.startswith("cannot be read")

    monkeypatch.setattr(scan_mod, "inspect_file", real)  # permission fixed: mtime and size unchanged
    second = scan_folders([a, b])
    assert second.skipped == []
    assert second.from_cache == 3


def test_scan_cache_keys_on_size_and_mtime(tmp_path):
    cache = ScanCache(tmp_path / "c.sqlite")
    cache.put_many([("/x.png", 10, 111, {"ok": False, "reason": "empty file"})])
    assert cache.get_many({"/x.png": (10, 111)}) == {"/x.png": {"ok": False, "reason": "empty file"}}
    assert cache.get_many({"/x.png": (10, 112)}) == {}
    assert cache.get_many({"/x.png": (11, 111)}) == {}
    cache.close()


def test_cache_lives_in_bincls_cache_dir(tmp_path):
    a, b = two_classes(tmp_path, 1)
    scan_folders([a, b])
    cache_files = list(Path(os.environ["BINCLS_CACHE_DIR"]).glob("scan-*.sqlite"))
    assert len(cache_files) == 1


# ---- read only ----


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry below `folder`: files by content hash, size and mtime; folders and links by mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.islink(p):
                out[p] = ("link", os.readlink(p), st.st_mtime_ns)
            elif os.path.isdir(p):
                out[p] = ("dir", st.st_mtime_ns, st.st_mode)
            else:
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                out[p] = ("file", digest, st.st_size, st.st_mtime_ns, st.st_mode)
    st = os.stat(folder)
    out[str(folder)] = ("root", st.st_mtime_ns)
    return out


def test_scan_split_and_dataset_never_write_to_the_users_folders(tmp_path, sample_dir):
    root = tmp_path / "user_data"
    for cls in ("ants", "bees"):
        for src in sorted((sample_dir / cls).iterdir())[:6]:
            fac.write_bytes(root / cls / src.name, src.read_bytes())
    make_zoo(root / "ants")
    fac.rgba_half_transparent(root / "bees" / "alpha.png")
    fac.jpeg_with_orientation(root / "bees" / "rot.jpg")
    an_ant = sorted((sample_dir / "ants").iterdir())[0]
    fac.write_bytes(root / "bees" / "dup.jpg", an_ant.read_bytes())  # a label conflict
    before = snapshot(root)

    data = load_data([root])
    assert data.scan.skipped and data.scan.conflicts  # the odd files were really looked at
    save_split(data.split, tmp_path / "split.csv")
    pre = Preprocess(32)
    for transform in (build_eval_transform(pre), build_train_transform(pre)):
        ds = ImageFileDataset(data.split, transform, decode_side=64)
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.shape == (3, 32, 32)
    scan_folders([root])  # again, from the cache

    assert snapshot(root) == before


def test_the_shipped_sample_stays_untouched(sample_dir):
    before = snapshot(sample_dir)
    load_data([sample_dir])
    assert snapshot(sample_dir) == before


# ---- real data ----


def test_shipped_sample(sample_dir):
    result = scan_folders([sample_dir])
    assert result.class_names == ["ants", "bees"]
    assert result.class_counts() == [30, 30]
    assert result.skipped == [] and result.excluded == {}
    assert all(0.2 < m < 0.7 for m in result.channel_mean)
    assert all(0.1 < s < 0.45 for s in result.channel_std)


@pytest.fixture(scope="module")
def hymenoptera_scan():
    # module-scoped, so it runs without the per-test cache folder: no cache at all
    return scan_folders([shared_path("data", "hymenoptera")], use_cache=False)


def test_hymenoptera_presplit_counts(hymenoptera_scan):
    result = hymenoptera_scan
    assert result.layout.presplit
    assert len(result.images) == 398
    assert result.skipped == [] and result.excluded == {}
    counts = split_counts(make_split(result), result.class_names)
    assert counts["train"] == {"ants": 124, "bees": 121}
    assert counts["val"] == {"ants": 70, "bees": 83}
    assert counts["test"] == {"ants": 0, "bees": 0}


def test_hymenoptera_oddities_are_accepted(hymenoptera_scan):
    recs = {Path(r.path).name: r for r in hymenoptera_scan.images}
    gif = recs["imageNotFound.gif"]
    assert gif.format == "GIF" and gif.label == 0 and gif.given_split == "train"
    assert any(n.lower().endswith(".jpeg") for n in recs)
    assert any(" " in n for n in recs)


@pytest.fixture(scope="module")
def face_mask_scan():
    return scan_folders([shared_path("data", "face_mask_dirty")], use_cache=False)


def test_face_mask_dirty_everything_decodes(face_mask_scan):
    result = face_mask_scan
    assert result.class_names == ["with_mask", "without_mask"]
    assert result.class_counts() == [303, 110]
    assert result.skipped == []
    recs = {Path(r.path).name: r for r in result.images}
    assert recs["black3.jpg_1088Wx1632H"].format == "WEBP"
    assert recs["with_mask129.jpg"].format == "PNG" and recs["with_mask129.jpg"].mode == "RGBA"
    assert {"RGBA", "P"} <= set(result.mode_counts())
    assert any(not n.isascii() for n in recs)
    # a non-ASCII name decodes like any other
    odd = next(r for n, r in recs.items() if not n.isascii())
    assert inspect_file(odd.path).sha256 == odd.sha256


def test_face_mask_dirty_duplicates_are_byte_identical(face_mask_scan):
    result = face_mask_scan
    assert result.duplicates and result.conflicts == []
    for group in result.duplicates:
        digests = {hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in group}
        assert len(digests) == 1
        assert sum(p not in result.excluded for p in group) == 1
    n_excluded = sum(len(g) - 1 for g in result.duplicates)
    assert len(result.excluded) == n_excluded
    assert sum(result.class_counts(usable_only=True)) == 413 - n_excluded


def test_face_mask_rgba_png_loads_on_white(face_mask_scan):
    path = next(r.path for r in face_mask_scan.images if r.mode == "RGBA")
    with Image.open(path) as im:
        alpha = np.asarray(im.getchannel("A"))
    rgb = np.asarray(images.load_rgb(path))
    clear = alpha == 0
    if clear.any():
        assert (rgb[clear] == 255).all()


def test_face_mask_dirty_has_its_one_real_near_duplicate(face_mask_scan):
    found = [[Path(p).name for p in g.paths] for g in face_mask_scan.near_duplicates]
    assert ["augmented_image_265.jpg", "augmented_image_267.jpg"] in found
    assert len(found) <= 2  # the distinct photos are not merged


def test_shared_placeholder_gif_is_blank_and_hymenoptera_mostly_clean(hymenoptera_scan):
    checks = {(q.path.rsplit("/", 1)[1], q.check) for q in hymenoptera_scan.quality}
    assert ("imageNotFound.gif", "blank") in checks
    assert len({p for p, _ in checks}) <= 5  # of 398 photos
