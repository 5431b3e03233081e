"""Bad input of every kind, at the engine and through the app: each gets a clear message naming the
file or the setting, and the rest of the work goes on.

The engine's reason for each kind of file is checked one by one in test_images.py and test_scan.py,
and unsafe zips in test_uploads.py; here the same kinds go through the Data page, inside uploads and
zips, into too-small datasets, extreme image sizes and hand-edited run configs.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import imagefactory as fac
import pytest
from appsupport import data_page, open_page, shown
from PIL import Image
from streamlit.testing.v1 import AppTest

import bincls.data.uploads as uploads
from bincls import BinclsError
from bincls.data.dataset import load_data, scan_folders
from bincls.data.images import ImageProblem, inspect_file, load_rgb
from bincls.data.split import SplitConfig
from bincls.paths import SAMPLE_DATA, runs_dir, uploads_dir
from bincls.training.config import TrainConfig, read_run_config
from pages.support.shared import keys

APP = str(Path(__file__).resolve().parent.parent / "app.py")
ZIP = "application/zip"
TINY = {"model": "small-cnn", "epochs": 1, "img_size": 32, "batch_size": 8, "workers": 0}


def _box(brand: bytes) -> bytes:
    return struct.pack(">I", 24) + b"ftyp" + brand + struct.pack(">I", 0) + b"mif1" + brand + b"\0" * 200


# Content that is not a usable image, as bytes (for uploads and zips too): name -> (bytes, reason start)
BAD_CONTENT = {
    "empty.jpg": (b"", "empty file"),
    "notes.jpg": (b"these are my notes\n", "not an image"),
    "half.jpg": (fac.encode(fac.rgb_image(64, 48, 1), "JPEG", quality=95)[:600], "truncated or corrupt"),
    "photo.heic.jpg": (_box(b"heic"), "unsupported format (HEIC)"),
    "photo.avif.jpg": (_box(b"avif"), "unsupported format (AVIF)"),
    "scan.pdf.jpg": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "unsupported format (PDF)"),
    "layers.psd.jpg": (b"8BPS\x00\x01" + b"\0" * 64, "unsupported format (PSD)"),
    "new.jxl.jpg": (b"\xff\x0a" + b"\0" * 64, "unsupported format (JPEG XL)"),
    "logo.svg.jpg": (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
        "unsupported format (SVG)",
    ),
}


def _bad_files(folder: Path) -> dict[str, str]:
    """Every kind of unusable file in `folder` (plus a broken PNG and a pixel bomb by header)."""
    expected = {str(fac.write_bytes(folder / n, data)): reason for n, (data, reason) in BAD_CONTENT.items()}
    expected[str(fac.png_with_garbage(folder / "garbage.png"))] = "truncated or corrupt"
    expected[str(fac.png_bomb(folder / "bomb.png", 20000, 20000))] = "too large"
    return expected


def make_zoo(root: Path) -> dict[str, str]:
    """root/cats and root/dogs with 4 good images each and every kind of bad file beside them."""
    fac.make_folder(root / "cats", 4, seed=0)
    fac.make_folder(root / "dogs", 4, seed=100)
    cats = root / "cats"
    expected = _bad_files(cats)
    junk = {
        cats / ".DS_Store": "hidden or system file",
        cats / "Thumbs.db": "hidden or system file",
        cats / "._img000.png": "hidden or system file",
        cats / ".hidden.png": "hidden or system file",
    }
    for p, reason in junk.items():
        fac.png(p, seed=900)
        expected[str(p)] = reason
    for d in (".thumbnails", "__MACOSX"):
        fac.png(root / "dogs" / d / "x.png", seed=901)
        expected[str(root / "dogs" / d)] = "hidden or system folder"
    os.symlink(root / "nowhere.jpg", cats / "moved.jpg")
    expected[str(cats / "moved.jpg")] = "dangling link"
    try:  # bytes that are not UTF-8 (an old zip's Latin-1 name)
        fac.png(os.fsdecode(os.fsencode(root / "dogs") + b"/caf\xe9.png"), seed=902)
        expected[str(root / "dogs" / "caf\ufffd.png")] = "file name is not UTF-8"
    except (OSError, UnicodeError):
        pass  # this file system refuses such names
    return expected


# The engine ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BAD_CONTENT))
def test_each_kind_of_bad_content_has_its_reason(tmp_path, name):
    data, reason = BAD_CONTENT[name]
    path = fac.write_bytes(tmp_path / name, data)
    with pytest.raises(ImageProblem) as exc:
        inspect_file(path)
    assert exc.value.reason.startswith(reason) and str(path) in str(exc.value)
    with pytest.raises(ImageProblem, match="upload.jpg"):
        load_rgb(data, name="upload.jpg")  # the same bytes, uploaded (prediction reads bytes)


def test_the_zoo_is_listed_and_the_rest_still_splits(tmp_path):
    expected = make_zoo(tmp_path / "zoo")
    data = load_data([tmp_path / "zoo"])
    got = {s.path: s.reason for s in data.scan.skipped}
    assert set(got) == set(expected)
    assert all(got[p].startswith(r) for p, r in expected.items()), got
    assert data.scan.class_counts() == [4, 4]
    assert len(data.split) == 8


def test_faulty_images_inside_uploads_and_zips_are_saved_then_listed_by_the_scan():
    session = uploads.new_upload_session()
    good = [(f"a{i}.png", fac.encode(fac.rgb_image(seed=i), "PNG")) for i in range(3)]
    bad = [(n, d) for n, (d, _) in BAD_CONTENT.items()]
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        for n, d in bad + [(f"b{i}.png", fac.encode(fac.rgb_image(seed=50 + i), "PNG")) for i in range(3)]:
            zf.writestr(f"inner/{n}", d)
    a = uploads.save_uploads(session, "a", good + bad)
    b = uploads.save_uploads(session, "b", [("b.zip", z.getvalue())])
    scan = scan_folders([a.folder, b.folder])
    assert scan.class_counts() == [3, 3]
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert len(scan.skipped) == 2 * len(BAD_CONTENT)
    for n, (_, reason) in BAD_CONTENT.items():
        assert reasons[n].startswith(reason)


def test_more_uploaded_bytes_than_the_limit_are_refused_before_writing(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    session = uploads.new_upload_session()
    with pytest.raises(BinclsError, match=r"class 'ants' hold .* MB, more than the .* allowed"):
        uploads.save_uploads(session, "ants", [("a.jpg", b"x" * 600), ("b.jpg", b"y" * 600)])
    assert not any(p.is_file() for p in uploads_dir().rglob("*"))


def two_classes(root: Path, n_a: int, n_b: int, bad_a: int = 0) -> Path:
    fac.make_folder(root / "a", n_a, seed=0)
    fac.make_folder(root / "b", n_b, seed=500)
    for i in range(bad_a):
        fac.text_file(root / "a" / f"broken{i}.jpg")
    return root


@pytest.mark.parametrize(
    "n_a, bad_a, split, message",
    [
        (0, 3, (0.7, 0.2, 0.1), r"Class 'a' has no usable images"),
        (1, 0, (0.7, 0.2, 0.1), r"split would have no 'a' images: class 'a' has only 1"),
        (2, 0, (0.6, 0.2, 0.2), r"The train split would have no 'a' images: class 'a' has only 2"),
    ],
    ids=["no-valid-images", "one-image", "two-images-three-splits"],
)
def test_too_small_a_class_is_a_clear_error_from_the_split_and_from_train(
    tmp_path, n_a, bad_a, split, message
):
    from bincls.training.loop import train

    root = two_classes(tmp_path / "d", n_a, 6, bad_a)
    with pytest.raises(BinclsError, match=message):
        load_data([root], split=SplitConfig(*split))
    with pytest.raises(BinclsError, match=message):
        train(TrainConfig(data=[str(root)], split=list(split), **TINY), runs_dir=tmp_path / "runs")


def _jpeg(path: Path, w: int, h: int) -> Path:
    """A grey JPEG of any size, made a strip at a time so the test never holds w*h pixels twice."""
    im = Image.new("L", (w, h), 90)
    im.paste(200, (0, 0, w // 2, h // 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "JPEG", quality=70)
    return path


def test_a_10000_px_jpeg_is_scanned_and_loaded_without_decoding_it_whole(tmp_path):
    big = _jpeg(tmp_path / "big.jpg", 10_000, 10_000)
    script = (
        "import re, sys\n"
        "from bincls.data.images import inspect_file, load_rgb\n"
        "info = inspect_file(sys.argv[1])\n"
        "im = load_rgb(sys.argv[1], max_side=64)\n"
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print(info.width, info.height, min(im.size), hwm)\n"
    )  # VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across exec)
    out = subprocess.run([sys.executable, "-c", script, str(big)], capture_output=True, text=True, check=True)
    w, h, side, peak_kb = map(int, out.stdout.split())
    assert (w, h) == (10_000, 10_000) and 64 <= side <= 1250  # decoded at 1/8 scale at most
    assert peak_kb < 250 * 1024, f"peak {peak_kb // 1024} MB: the 300 MB image was decoded whole"


def extreme_sizes(root: Path) -> Path:
    """Two classes with 1 x 1, 1 x 16, 10,000 x 1 and 10,000 x 10,000 px images among ordinary ones."""
    two_classes(root, 5, 5)
    fac.png(root / "a" / "dot.png", w=1)  # 1 x 16
    fac.save(fac.rgb_image(1, 1, 7), root / "a" / "pixel.png", "PNG")
    fac.save(fac.rgb_image(1, 1, 8), root / "b" / "pixel.jpg", "JPEG")
    _jpeg(root / "b" / "huge.jpg", 10_000, 10_000)
    fac.save(fac.rgb_image(10_000, 1, 9), root / "a" / "panorama.png", "PNG")
    return root


@pytest.mark.slow
def test_1x1_and_10000_px_images_train_and_predict(tmp_path):
    from bincls.inference.predict import Predictor
    from bincls.training.loop import train

    root = extreme_sizes(tmp_path / "d")
    scan = scan_folders([root])
    # Nothing to learn from in a 1 x 1 pixel or a 1 px line: listed with the reason, not trained on.
    too_small = sorted(Path(s.path).name for s in scan.skipped if s.reason.startswith("too small to learn"))
    assert too_small == ["dot.png", "panorama.png", "pixel.jpg", "pixel.png"] and len(scan.skipped) == 4
    assert scan.class_counts() == [5, 6]
    assert (10_000, 10_000) in {(r.width, r.height) for r in scan.images}
    result = train(TrainConfig(data=[str(root)], split=[0.6, 0.2, 0.2], **TINY), runs_dir=tmp_path / "runs")
    assert result.run.status()["state"] == "finished"
    clf = Predictor(result.run.best_checkpoint)
    for name in ("b/huge.jpg", "a/pixel.png", "a/panorama.png"):
        p = clf.predict(root / name)
        assert 0.0 <= p.p_class1 <= 1.0


# Hand-edited run configs ---------------------------------------------------------------------------
GOOD = {"data": ["/data/cats", "/data/dogs"], "epochs": 3, "lr": 0.001}


@pytest.mark.parametrize(
    "change, key",
    [
        ({"epochs": "ten"}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"lr": [1]}, "lr"),
        ({"lr": "0.1"}, "lr"),
        ({"lr": -1}, "lr"),
        ({"batch_size": None}, "batch_size"),
        ({"img_size": "224"}, "img_size"),
        ({"data": "/data/cats"}, "data"),
        ({"data": [1, 2]}, "data"),
        ({"split": "0.7,0.2,0.1"}, "split"),
        ({"split": [0.7, "x", 0.1]}, "split"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"augment": "no"}, "augment"),
        ({"freeze_backbone": 1}, "freeze_backbone"),
        ({"class_names": "cats"}, "class_names"),
        ({"model": 5}, "model"),
        ({"weights": None}, "weights"),
        ({"seed": "0"}, "seed"),
        ({"memory_budget": 4}, "memory_budget"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_wrong_setting_is_named(change, key):
    with pytest.raises(BinclsError, match=key):
        TrainConfig.from_dict({**GOOD, **change})


def test_missing_settings_and_wrong_shapes_are_named():
    with pytest.raises(BinclsError, match="lacks the setting.* data"):
        TrainConfig.from_dict({"epochs": 3})
    for raw in ([1, 2], "text", None, 3):
        with pytest.raises(BinclsError, match="must be a JSON object"):
            TrainConfig.from_dict(raw)
    assert TrainConfig.from_dict({**GOOD, "threshold": 0.3}).epochs == 3  # run keys are allowed


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json at all {", "is not valid JSON"),
        ("", "is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"data": ["x"], "epochs": "ten"}', "epochs must be a whole number"),
        ('{"epochs": 3}', "lacks the setting"),
    ],
)
def test_read_run_config_names_the_file(tmp_path, text, message):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(BinclsError, match=message) as exc:
        read_run_config(tmp_path)
    assert str(tmp_path / "config.json") in str(exc.value)
    with pytest.raises(BinclsError, match="cannot be read"):
        read_run_config(tmp_path / "gone")


# Through the app: the Data page --------------------------------------------------------------------


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def errors(at: AppTest) -> str:
    return shown(" ".join(e.value for e in at.error))


def skipped_rows(at: AppTest) -> dict[str, str]:
    """file -> reason, from the skipped-files table(s)."""
    rows = {}
    for d in at.dataframe:
        df = d.value
        if "reason" in df.columns and "file" in df.columns and "check" not in df.columns:  # not quality
            rows.update(zip(df["file"], df["reason"]))
    return rows


def split_table(at: AppTest):
    return next((d.value for d in at.dataframe if d.value.index.name == "split"), None)


def test_the_data_page_lists_every_bad_file_with_its_reason_and_keeps_the_rest(tmp_path):
    expected = make_zoo(tmp_path / "zoo")
    at = data_page(**{keys.DATA_PATHS: [str(tmp_path / "zoo")]})
    assert not at.error
    m = metrics(at)
    assert m["cats"] == "4 / 4" and m["dogs"] == "4 / 4" and m["Skipped files"] == str(len(expected))
    rows = skipped_rows(at)
    for path, reason in expected.items():
        short = os.path.relpath(path, tmp_path / "zoo")
        assert rows.get(short, "").startswith(reason), (short, rows.get(short))
    assert split_table(at).loc["total", "total"] == 8  # the rest is split and usable


def test_the_data_page_lists_1x1_images_as_skipped_and_10000_px_images_as_usable(tmp_path):
    root = extreme_sizes(tmp_path / "d")
    at = data_page(**{keys.DATA_PATHS: [str(root)]})
    assert not at.error
    assert metrics(at)["a"] == "5 / 5" and metrics(at)["b"] == "6 / 6"
    assert metrics(at)["Skipped files"] == "4"  # the 1 x 1 pixels and the 1 px lines, with the reason
    assert any("Width 24..10000 px, height 16..10000 px" in c.value for c in at.caption), [
        c.value for c in at.caption]


def upload(name: str, data: bytes, mime: str = "image/jpeg") -> tuple[str, bytes, str]:
    return (name, data, mime)


def use_uploads(at: AppTest, a: list, b: list) -> AppTest:
    at.text_input(key=keys.UPLOAD_NAMES[0]).input("good")
    at.text_input(key=keys.UPLOAD_NAMES[1]).input("other")
    at.file_uploader(key=f"{keys.UPLOAD_FILES[0]}-0").set_value(a)
    at.file_uploader(key=f"{keys.UPLOAD_FILES[1]}-0").set_value(b)
    next(x for x in at.button if x.label == "Use the uploaded images").click()
    return at.run()


def test_bad_uploads_and_a_zip_of_bad_images_are_listed_and_the_rest_used():
    good_a = [upload(f"a{i}.png", fac.encode(fac.rgb_image(seed=i), "PNG")) for i in range(4)]
    bad = [upload(n, d) for n, (d, _) in BAD_CONTENT.items()]
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        for n, (d, _) in BAD_CONTENT.items():
            zf.writestr(f"mixed/{n}", d)
        for i in range(4):
            zf.writestr(f"mixed/b{i}.png", fac.encode(fac.rgb_image(seed=60 + i), "PNG"))
    at = use_uploads(data_page(), good_a + bad, [upload("b.zip", z.getvalue(), ZIP)])
    assert not at.exception and not at.error
    assert metrics(at)["good"] == "4 / 4" and metrics(at)["other"] == "4 / 4"
    assert metrics(at)["Skipped files"] == str(2 * len(BAD_CONTENT))
    rows = {Path(f).name + ("@zip" if "mixed" in f else ""): r for f, r in skipped_rows(at).items()}
    for n, (_, reason) in BAD_CONTENT.items():
        assert rows[n].startswith(reason) and rows[n + "@zip"].startswith(reason)
    assert split_table(at).loc["total", "total"] == 8


def _zip_with(info_name: str, data: bytes, **attrs) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.png", fac.encode(fac.rgb_image(seed=5), "PNG"))
        info = zipfile.ZipInfo(info_name)
        info.filename = info_name
        for k, v in attrs.items():
            setattr(info, k, v)
        zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


UNSAFE_ZIPS = {
    "climb.zip": (_zip_with("../../evil.png", b"evil"), "climbs out of its folder"),
    "absolute.zip": (_zip_with("/etc/evil.png", b"evil"), "has an absolute path"),
    "link.zip": (
        _zip_with("link.png", b"/etc/passwd", create_system=3, external_attr=0o120777 << 16),
        "is a symbolic link",
    ),
    "bomb.zip": (_zip_with("bomb.bmp", b"\0" * (20 * 1024**2)), "zip bomb"),
    "broken.zip": (b"PK\x03\x04 not really a zip", "is not a readable zip"),
}


@pytest.mark.parametrize("name", sorted(UNSAFE_ZIPS))
def test_unsafe_zips_are_refused_on_the_data_page_and_nothing_is_kept(name):
    data, message = UNSAFE_ZIPS[name]
    good = [upload("b.png", fac.encode(fac.rgb_image(seed=1), "PNG"))]
    at = use_uploads(data_page(), [upload(name, data, ZIP)], good)
    assert not at.exception
    assert name in errors(at) and message in errors(at)
    assert at.session_state[keys.DATA_PATHS] == [str(SAMPLE_DATA)]
    assert not any(p.is_file() for p in uploads_dir().rglob("*"))
    assert len(data) < 100_000


def test_more_uploaded_bytes_than_the_limit_are_refused_on_the_data_page(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 10_000)
    files = [upload(f"a{i}.png", fac.encode(fac.rgb_image(64, 64, seed=i), "PNG")) for i in range(3)]
    at = use_uploads(data_page(), files, files)
    assert not at.exception
    assert "class 'good' hold" in errors(at) and "nothing was saved" in errors(at)
    assert at.session_state[keys.DATA_PATHS] == [str(SAMPLE_DATA)]


@pytest.mark.parametrize(
    "n_a, bad_a, val, test, message",
    [
        (0, 3, 20, 10, "Class 'a' has no usable images"),
        (1, 0, 20, 10, "class 'a' has only 1 usable image"),
        (2, 0, 20, 20, "The train split would have no 'a' images"),
    ],
    ids=["no-valid-images", "one-image", "two-images-three-splits"],
)
def test_too_small_a_class_is_an_error_on_the_data_page_with_the_scan_still_shown(
    tmp_path, n_a, bad_a, val, test, message
):
    root = two_classes(tmp_path / "d", n_a, 6, bad_a)
    at = data_page(
        **{
            keys.DATA_PATHS: [str(root)],
            keys.SPLIT_RATIOS: (1 - (val + test) / 100, val / 100, test / 100),
        }
    )
    assert not at.exception
    assert message in errors(at)
    m = metrics(at)
    assert m["a"] == f"{n_a} / {n_a}" and m["Skipped files"] == str(bad_a)
    if bad_a:
        assert all(r.startswith("not an image") for r in skipped_rows(at).values())


def test_a_real_run_config_reads_back(sample_run):
    assert read_run_config(sample_run.path).data == [str(SAMPLE_DATA)]


# Through the app: runs whose config.json was edited by hand ----------------------------------------
BROKEN_CONFIGS = {
    "not-json": "this is not JSON {",
    "wrong-types": json.dumps({"data": ["x"], "epochs": "ten", "lr": [1], "threshold": "high"}),
    "missing-keys": json.dumps({"epochs": 3}),
    "empty": "",
}


@pytest.fixture
def broken_runs(sample_run) -> dict[str, Path]:
    """The sample run plus copies of it whose config.json was edited by hand, one per kind."""
    out = {}
    for i, (kind, text) in enumerate(BROKEN_CONFIGS.items()):
        dest = runs_dir() / f"{sample_run.id[:-4]}{i:04d}"  # newer ids: listed first
        shutil.copytree(sample_run.path, dest)
        (dest / "config.json").write_text(text)
        out[kind] = dest
    return out


def test_the_runs_page_renders_with_broken_configs_listed(broken_runs):
    at = open_page("runs")
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert {p.name for p in broken_runs.values()} <= set(table["Run"])


@pytest.mark.parametrize("kind", sorted(BROKEN_CONFIGS))
def test_the_evaluate_page_names_the_broken_setting_and_still_evaluates(broken_runs, kind):
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state[keys.CURRENT_RUN] = broken_runs[kind].name
    at.run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception, [e.value for e in at.exception]
    warning = shown(" ".join(w.value for w in at.warning))
    assert str(broken_runs[kind] / "config.json") in warning
    assert {
        "not-json": "not valid JSON",
        "wrong-types": "epochs",
        "missing-keys": "data",
        "empty": "not valid JSON",
    }[kind] in warning
    assert [m.label for m in at.metric][:1] == ["Accuracy"]  # the checkpoint holds what evaluation needs


def test_a_config_holding_a_json_list_does_not_break_the_pages(sample_run):
    (sample_run.path / "config.json").write_text("[1, 2]")
    at = open_page("runs")  # asserts that nothing raised
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    assert "must be a JSON object" in shown(" ".join(w.value for w in at.warning))
