"""`bincls export RUN --format web`: the folder, the JSON it carries, and the page itself in Chromium."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from bincls.errors import BinclsError
from bincls.inference import web_export as we
from bincls.inference.web_runtime import WebRuntime

SAMPLE = Path(__file__).resolve().parents[2] / "bincls" / "sample_data"


@pytest.fixture
def small_runtime(tmp_path) -> WebRuntime:
    """Stand-in runtime files (a few bytes each): the folder's layout without the 35 MB download."""
    folder = tmp_path / "runtime"
    folder.mkdir()
    for name in (*we.RUNTIME_FILES, "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"):
        (folder / name).write_bytes(b"\0asm" if name.endswith(".wasm") else f"/* {name} */".encode())
    return WebRuntime(folder)


def written_folder(
    exported_sample_run: Path, tmp_path: Path, runtime: WebRuntime
) -> tuple[Path, dict, bytes]:
    model = (exported_sample_run / "best.onnx").read_bytes()
    info = json.loads((exported_sample_run / "best.onnx.json").read_text())
    folder = tmp_path / "web"
    we.write_web_folder(folder, model, info, runtime)
    return folder, info, model


def js_value(path: Path, name: str) -> str:
    """The value a data .js file assigns to window.NAME (JSON or a JSON string)."""
    text = path.read_text()
    start = text.index(f"window.{name} = ") + len(f"window.{name} = ")
    return text[start : text.rindex(";")]


def test_the_folder_holds_the_page_the_model_the_runtime_and_its_licence(
    exported_sample_run, tmp_path, small_runtime
):
    import base64

    folder, info, model = written_folder(exported_sample_run, tmp_path, small_runtime)
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert files == {
        "index.html",
        "bincls.js",
        "page.js",
        "bincls.css",
        "model.js",
        "model.json",
        we.MANIFEST,
        "runtime/ort.wasm.min.js",
        "runtime/ort-wasm-glue.js",
        "runtime/ort-wasm-binary.js",
        "runtime/LICENSE",
        "runtime/ThirdPartyNotices.txt",
        "runtime/package.json",
    }
    manifest = json.loads((folder / we.MANIFEST).read_text())
    assert manifest["format"] == we.FORMAT and manifest["runtime"]["version"] == "1.31.1"
    for name, entry in manifest["files"].items():  # every file listed, with its hash
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"]
    assert set(manifest["files"]) == files - {we.MANIFEST}
    carried = json.loads(js_value(folder / "model.js", "BINCLS_MODEL"))
    assert (
        base64.b64decode(carried["onnx"]) == model
        and manifest["model_sha256"] == hashlib.sha256(model).hexdigest()
    )
    assert (
        base64.b64decode(json.loads(js_value(folder / "runtime/ort-wasm-binary.js", "BINCLS_ORT_WASM")))
        == b"\0asm"
    )
    glue = json.loads(js_value(folder / "runtime/ort-wasm-glue.js", "BINCLS_ORT_GLUE"))
    assert glue == "/* ort-wasm-simd-threaded.mjs */"
    html = (folder / "index.html").read_text()
    # Only the folder's own scripts, in the order they need each other; nothing fetched from elsewhere.
    order = [
        "runtime/ort.wasm.min.js",
        "runtime/ort-wasm-glue.js",
        "runtime/ort-wasm-binary.js",
        "model.js",
        "bincls.js",
        "page.js",
    ]
    assert [html.index(f'src="{s}"') for s in order] == sorted(html.index(f'src="{s}"') for s in order)
    assert "http://" not in html and "https://" not in html


def test_the_page_carries_the_exports_class_names_threshold_and_check_without_local_paths(
    exported_sample_run, tmp_path, small_runtime
):
    folder, info, _ = written_folder(exported_sample_run, tmp_path, small_runtime)
    carried = json.loads(js_value(folder / "model.js", "BINCLS_MODEL"))["info"]
    assert carried == json.loads((folder / "model.json").read_text())
    for key in ("class_names", "threshold", "ood_threshold", "temperature", "input", "outputs", "decision"):
        assert carried[key] == info[key]
    assert carried["verification"]["passed"] is True
    assert carried["verification"]["max_prob_diff"] == info["verification"]["max_prob_diff"]
    assert info["provenance"]["checkpoint"].startswith("/")  # the export JSON beside the run has the path...
    assert carried["provenance"]["checkpoint"] == "best.pt"  # ...the page, which may go on the web, does not
    assert str(exported_sample_run) not in (folder / "model.js").read_text()


def test_the_zip_holds_the_folder_under_its_name(exported_sample_run, tmp_path, small_runtime):
    folder, _, _ = written_folder(exported_sample_run, tmp_path, small_runtime)
    import io

    with zipfile.ZipFile(io.BytesIO(we.web_zip_bytes(folder))) as z:
        names = set(z.namelist())
        assert z.read("web/model.json") == (folder / "model.json").read_bytes()
    assert names == {f"web/{p.relative_to(folder).as_posix()}" for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(BinclsError, match="not a web export"):
        we.web_zip_bytes(tmp_path)


def test_only_an_earlier_web_export_or_an_empty_folder_is_replaced(
    tmp_path, exported_sample_run, small_runtime
):
    ckpt = exported_sample_run / "best.pt"
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(BinclsError, match="not an earlier web export"):
        we._target(mine, ckpt, None)
    assert (mine / "holiday.jpg").read_bytes() == b"not ours"
    (tmp_path / "empty").mkdir()
    assert we._target(tmp_path / "empty", ckpt, None) == tmp_path / "empty"
    folder, _, _ = written_folder(exported_sample_run, tmp_path, small_runtime)
    assert we._target(folder, ckpt, None) == folder
    (tmp_path / "web.zip").write_bytes(b"someone's zip")
    with pytest.raises(BinclsError, match="web.zip exists and is not a web export's zip"):
        we._target(folder, ckpt, None)
    with pytest.raises(BinclsError, match="does not exist"):
        we._target(tmp_path / "no" / "web", ckpt, None)


def test_default_folder_is_in_the_run_or_beside_a_lone_checkpoint(tmp_path):
    from bincls.runs.folder import RunFolder

    assert we.default_folder(tmp_path / "best.pt", RunFolder(tmp_path)) == tmp_path / "web"
    assert we.default_folder(tmp_path / "model.pt", None) == tmp_path / "model-web"


@pytest.mark.browser
def test_the_page_from_disk_with_no_network_gives_bincls_predicts_answers(
    trained_sample_run, tmp_path, web_runtime_here
):
    """The issue's check on the shipped sample: every sample image through the page's file input, and a few
    through window.bincls.classify, against `bincls predict` (Predictor.predict_many); no request leaves."""
    from browser import require_chromium, screenshot
    from web_page import (
        LOCAL_SCHEMES,
        classify_with_api,
        classify_with_file_input,
        offline_page,
        webcam_answers,
    )

    from bincls.data.images import is_junk_name
    from bincls.inference.predict import Predictor

    require_chromium()
    run = tmp_path / trained_sample_run.name
    shutil.copytree(trained_sample_run, run)
    done = we.export_web(run)
    assert done.folder == run / "web" and done.zip == run / "web.zip" and done.zip.stat().st_size > 1e6
    files = sorted(p for p in SAMPLE.rglob("*") if p.is_file() and not is_junk_name(p.name))
    expected = Predictor(run / "best.pt", device="cpu").predict_many([str(f) for f in files])
    with offline_page(done.folder, width=390, height=844, dark=True) as web:
        assert web.page.evaluate("document.body.dataset.state") == "ready", web.page.text_content("#status")
        got = classify_with_file_input(web.page, files)
        by_api = [classify_with_api(web.page, f) for f in files[:4]]
        live = webcam_answers(web.page, 3)  # Chromium's test camera: the live path answers too
        screenshot(web.page, "web-export-phone-dark")
    assert not web.refused and not web.errors, (web.refused, web.errors)
    assert all(u.startswith(LOCAL_SCHEMES) for u in web.requests)
    assert [g["file"] for g in got] == [f.name for f in files]
    assert len(live) == 3 and set(live) <= {"ants", "bees", "Unlike the training images"}
    for g, e in zip(got, expected):
        assert g["error"] is None and g["class_name"] == e.class_name, (g, e)
        assert abs(g["p_class1"] - e.p_class1) <= 0.002, (g, e)
        assert g["ood"] == json.dumps(e.ood), (g, e)  # the "unlike the training images" flag too
    for a, e in zip(by_api, expected):
        assert set(a) == {"class_name", "probability", "p_class1", "ood", "ood_score"}
        assert a["class_name"] == e.class_name and abs(a["p_class1"] - e.p_class1) <= 0.002
        assert a["probability"] == pytest.approx(e.probability, abs=0.002) and a["ood"] == e.ood


def test_cli_refuses_what_the_web_and_phone_formats_do_not_take(tmp_path, capsys):
    from bincls.cli import main

    assert main(["export", str(tmp_path), "--format", "web", "--input", "tensor"]) == 2
    assert "--format web takes no --input or --batch" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--format", "tflite", "--int8"]) == 2
    assert "--format tflite is fp32 only" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--format", "web", "--int8"]) == 2
    assert "--format web is fp32 only" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_export_web_reuses_the_current_export_and_says_where_the_page_is(
    exported_sample_run, tmp_path, web_runtime_here, capsys
):
    from bincls.cli import main

    run = tmp_path / exported_sample_run.name
    shutil.copytree(exported_sample_run, run)
    before = (run / "best.onnx").read_bytes()
    assert main(["export", str(run), "--format", "web", "-o", str(tmp_path / "page")]) == 0
    out = capsys.readouterr().out
    assert "passed" in out and f"Web page: {tmp_path / 'page' / 'index.html'}" in out and "page.zip" in out
    carried = json.loads((tmp_path / "page" / "model.json").read_text())
    assert (
        carried["provenance"]["exported_at"]
        == json.loads((run / "best.onnx.json").read_text())["provenance"]["exported_at"]
    )  # the run's current export, not a new one
    assert (run / "best.onnx").read_bytes() == before
    assert (
        zipfile.ZipFile(tmp_path / "page.zip").read("page/index.html")
        == (tmp_path / "page" / "index.html").read_bytes()
    )


@pytest.mark.slow
def test_the_current_web_export_is_of_the_runs_current_model(exported_sample_run, tmp_path, web_runtime_here):
    """What the app asks before offering the download again: RUN/web still carries the current export."""
    run = tmp_path / exported_sample_run.name
    shutil.copytree(exported_sample_run, run)
    assert we.current_web_export(run) is None  # none yet
    done = we.export_web(run, make_zip=False)
    assert done.zip is None and not (run / "web.zip").exists()
    assert we.current_web_export(run) == run / "web"
    with open(run / "best.pt", "ab") as f:  # retrained (other checkpoint bytes): the page is stale
        f.write(b"\0")
    assert we.current_web_export(run) is None
