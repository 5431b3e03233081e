"""The export section of the Predict page through AppTest: a real export of a trained run, its parity
report, the downloads and the serve command; an export is offered again once it is stale."""

from __future__ import annotations

import json

import pytest
from appsupport import open_page

from bincls.inference.evaluate import save_threshold
from bincls.paths import SAMPLE_DATA
from pages.support.shared.keys import PREDICT_EXPORT


def export_button(at):
    return next(b for b in at.button if b.label.startswith("Export to ONNX"))


def downloads(at) -> list[str]:
    return [d.proto.label for d in at.get("download_button")]


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.mark.slow  # two real exports (fp32, INT8) with their checks: 20 to 40 s
def test_predict_page_exports_the_run_shows_the_check_and_the_serve_command(sample_run, web_runtime_here):
    sample_files = sorted(p.name for p in SAMPLE_DATA.rglob("*"))
    at = open_page("predict")
    codes = [c.value for c in at.code]
    assert any(c.endswith(f"python -m bincls serve {sample_run.path}") for c in codes), codes
    assert any(c.startswith("curl -F files=@") and "/predict" in c for c in codes)
    assert not at.metric and export_button(at).label == "Export to ONNX (fp32)"

    export_button(at).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    shown = metrics(at)
    assert list(shown) == ["Largest P difference", "Same label", "Accuracy (PyTorch)", "Accuracy (ONNX)",
                           "Size", "CPU latency"]  # fmt: skip
    assert shown["Accuracy (ONNX)"] == shown["Accuracy (PyTorch)"] and shown["Accuracy (ONNX)"].endswith("%")
    assert not [b.label for b in at.button if b.label.startswith("Export")], "exported: no button any more"
    assert shown["Same label"] == "100.0%" and float(shown["Largest P difference"]) < 1e-3
    assert shown["Size"].endswith(" MB") and shown["CPU latency"].endswith(" ms")
    assert any("Checked against `bincls predict`" in c.value and "**passed**" in c.value for c in at.caption)
    assert downloads(at) == ["Download best.onnx", "Download best.onnx.json"]
    onnx, meta = sample_run.path / "best.onnx", sample_run.path / "best.onnx.json"
    info = json.loads(meta.read_text())
    assert onnx.is_file() and info["verification"]["passed"] and info["model_file"] == "best.onnx"
    assert sorted(p.name for p in SAMPLE_DATA.rglob("*")) == sample_files, "the data folder is only read"

    # The web page: made from that export on a click, then offered as a zip.
    web = next(b for b in at.button if b.label == "Make the web page")
    web.click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Download the page (zip)" in downloads(at)
    assert (sample_run.path / "web" / "index.html").is_file()

    # Another visit finds the export (no button); INT8 is exported on its own, with the fp32 comparison.
    at = open_page("predict")
    assert downloads(at) == ["Download best.onnx", "Download best.onnx.json", "Download the page (zip)"]
    assert not at.error
    at.radio(key=f"{PREDICT_EXPORT}_precision").set_value("int8").run()
    served = [c.value for c in at.code if c.value.endswith(f"python -m bincls serve {sample_run.path}")]
    assert served, "INT8: the default"
    export_button(at).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    size = next(m for m in at.metric if m.label == "Size")
    assert size.proto.delta.endswith("x smaller") and "The fp32 file" in size.proto.help
    assert downloads(at)[:2] == ["Download best.int8.onnx", "Download best.int8.onnx.json"]
    assert (sample_run.path / "best.int8.onnx").is_file()

    # A threshold saved since makes the file give other labels: it is offered for export again.
    save_threshold(sample_run.path, 0.3)
    at = open_page("predict")
    assert export_button(at).label == "Export to ONNX (fp32)" and not downloads(at)
    assert any(b.label == "Make the web page" for b in at.button), "the page is made again too"
    assert any("threshold changed since" in c.value for c in at.caption)
