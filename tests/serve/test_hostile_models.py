"""A hostile or damaged model file, JSON or server option is a one-line error, never a traceback (issue
24, class 2), and what an export's JSON says is tied to the file beside it (class 3): a JSON that does not
name the file's own bytes is not believed."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image
from serving import ROOT

from bincls import BinclsError
from bincls.cli import main
from bincls.inference.export import current_export
from bincls.inference.onnx_predict import OnnxPredictor, sha256_of


@pytest.fixture
def run(exported_sample_run, tmp_path) -> Path:
    return Path(shutil.copytree(exported_sample_run, tmp_path / "runs" / exported_sample_run.name))


def planted(run: Path, name: str, model: onnx.ModelProto | bytes, **changes) -> Path:
    """`model` as runs/NAME.onnx with the export's JSON beside it, naming its bytes (an attacker writes
    both), with `changes` made to the JSON (None deletes a key)."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    path = run / f"{name}.onnx"
    path.write_bytes(data)
    info = json.loads((run / "best.onnx.json").read_text())
    info.update(model_file=path.name, model_sha256=sha256_of(data))
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        table = info
        for parent in parents:
            table = table[parent]
        table.pop(leaf) if value is None else table.__setitem__(leaf, value)
    path.with_name(path.name + ".json").write_text(json.dumps(info))
    return path


def serve_fails_in_one_line(capsys, *args: str) -> str:
    """`bincls serve ARGS` ends at once with exit code 2 and one line on stderr; that line."""
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_hostile_onnx_files_are_refused_in_one_line(run, tmp_path, capsys):
    good = onnx.load(str(run / "best.onnx"))
    outside = tmp_path / "outside.bin"
    os.mkfifo(outside)  # anything that opens it for reading blocks: the file must never be opened
    external = onnx.ModelProto.FromString(good.SerializeToString())
    weight = max(external.graph.initializer, key=lambda t: len(t.raw_data))
    weight.ClearField("raw_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", os.path.relpath(outside, run)), ("length", "64")):
        weight.external_data.add(key=k, value=v)
    unknown = onnx.ModelProto.FromString(good.SerializeToString())
    unknown.graph.node[0].domain = "evil.ops"  # an operator domain no runtime knows
    unknown.opset_import.add(domain="evil.ops", version=1)
    short = onnx.ModelProto.FromString(good.SerializeToString())
    weight = max(short.graph.initializer, key=lambda t: len(t.raw_data))
    weight.raw_data = weight.raw_data[:8]  # declares far more bytes than it has
    refused = "onnxruntime cannot load"
    cases = {"external": (external, "external data"), "unknown_domain": (unknown, refused),
             "short_tensor": (short, refused), "not_onnx": (b"\x08\x07garbage" * 9, "ONNX")}  # fmt: skip
    for name, (model, says) in cases.items():
        path = planted(run, name, model)
        with pytest.raises(BinclsError, match=says):
            OnnxPredictor(path)
        assert says in serve_fails_in_one_line(capsys, str(path))
    # The same from a shell: no traceback, and the FIFO named as external data was never opened.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bincls", "serve", str(run / "external.onnx"), "--port", "18765"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "external data" in proc.stderr and "Traceback" not in proc.stderr


def test_a_json_with_nonsense_is_refused_naming_the_field(run, capsys):
    model = (run / "best.onnx").read_bytes()
    cases = {
        "class_names": ["cats", "dogs", "birds"], "threshold": "abc", "ood_threshold": "x",
        "input.shape": None, "input.preprocessing.img_size": 40_000, "verification.max_prob_diff": -1,
    }  # fmt: skip
    cases = {**{k: ({k: v}, k) for k, v in cases.items()}, "nan": ({"threshold": math.nan}, "threshold"),
             "seven": ({"threshold": 7}, "threshold")}  # fmt: skip
    for name, (changes, field) in cases.items():
        path = planted(run, name, model, **changes)
        with pytest.raises(BinclsError, match=field.replace(".", r"\.")):
            OnnxPredictor(path)
        assert field in serve_fails_in_one_line(capsys, str(path)), name


def test_server_options_out_of_range_are_one_line_errors(exported_sample_run, capsys):
    onnx_file = str(exported_sample_run / "best.onnx")
    cases = [
        (["--max-request-mb", "nan"], "--max-request-mb"), (["--max-request-mb", "inf"], "--max-request-mb"),
        (["--max-request-mb", "-1"], "--max-request-mb"), (["--max-request-mb", "0.001"], "--max-request-mb"),
        (["--max-held-mb", "100"], "--max-held-mb"), (["--threads", "-1"], "--threads"),
        (["--threads", "0"], "--threads"), (["--port", "70000"], "--port"), (["--port", "0"], "--port"),
        (["--max-files", "0"], "--max-files"), (["--max-files", "5000"], "--max-files"),
        (["--threshold", "nan"], None), (["--allowed-host", "a*b"], "--allowed-host"),
        (["--collect", "x", "--collect-max", "0"], "--collect-max"),
        (["--collect", "x", "--collect-margin", "0.9"], "--collect-margin"),
    ]  # fmt: skip
    for args, flag in cases:
        if flag is None:  # argparse's own refusal: usage and one error line, exit 2
            with pytest.raises(SystemExit) as stop:
                main(["serve", onnx_file, *args])
            assert stop.value.code == 2 and "--threshold" in capsys.readouterr().err
            continue
        assert flag in serve_fails_in_one_line(capsys, onnx_file, *args), args


def test_a_swapped_onnx_file_is_not_served_as_checked(run, capsys):
    """best.onnx replaced by another model's file, its JSON kept: the JSON's check was not of this file."""
    from bincls.paths import cache_dir
    from bincls.serve.server import model_files

    other = onnx.load(str(run / "best.onnx"))
    weight = max(other.graph.initializer, key=lambda t: len(t.raw_data))
    weight.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(weight), weight.name))  # another model
    (run / "best.onnx").write_bytes(other.SerializeToString())
    with pytest.raises(BinclsError, match="describes another file"):
        OnnxPredictor(run / "best.onnx")
    assert "describes another file" in serve_fails_in_one_line(capsys, str(run / "best.onnx"))
    assert current_export(run) is None, "not current: the app offers to export again"
    served, _, _ = model_files(run, "fp32")  # serving the run exports it again, into the cache
    assert served.parent == cache_dir() / "serve"
    assert OnnxPredictor(served).info["verification"]["passed"]


def test_an_older_json_that_names_no_file_is_not_believed(run):
    info = json.loads((run / "best.onnx.json").read_text())
    del info["model_sha256"]
    (run / "best.onnx.json").write_text(json.dumps(info))
    with pytest.raises(BinclsError, match="names no file content"):
        OnnxPredictor(run / "best.onnx")
    assert current_export(run) is None
    (run / "best.onnx.json").unlink()  # without a JSON the file's own metadata is read: no check claimed
    alone = OnnxPredictor(run / "best.onnx")
    assert alone.class_names == ["ants", "bees"] and "verification" not in alone.info


def test_what_goes_wrong_inside_is_json_a_per_file_reason_or_a_500_never_plain_text(run):
    """NaN from the model's arithmetic is null (JSON has no NaN); running out of memory on one image is
    that image's reason; anything unforeseen is a JSON 500, and the server goes on."""
    from fastapi.testclient import TestClient

    from bincls.serve.app import create_app

    model = OnnxPredictor(run / "best.onnx")
    model.ood_threshold = 1.0
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "PNG")
    image = ("x.png", buf.getvalue())

    def scores(*outcomes):
        it = iter(outcomes)

        def score(pixels):
            outcome = next(it)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        return score

    with TestClient(create_app(model), base_url="http://localhost", raise_server_exceptions=False) as client:
        model.score = scores((0.7, float("nan")))
        resp = client.post("/predict", files={"files": image})
        assert resp.status_code == 200 and resp.json()[0]["ood_score"] is None
        model.score = scores(MemoryError(), (0.7, 0.5))
        resp = client.post("/predict", files=[("files", image), ("files", image)])
        first, second = resp.json()
        assert resp.status_code == 200 and "not enough memory" in first["error"] and second["error"] is None
        model.score = scores(RuntimeError("a bug"))
        resp = client.post("/predict", files={"files": image})
        assert resp.status_code == 500 and "RuntimeError" in resp.json()["detail"]
        assert client.get("/health").json() == {"status": "ok"}
