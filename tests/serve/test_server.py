"""`bincls serve` over real HTTP: a server process on a free localhost port, answers equal to the CLI's,
4xx with a JSON reason for every kind of bad input, request limits, the API key, concurrent clients."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import imagefactory as fac
import pytest
from serving import Server

from bincls import BinclsError
from bincls.inference.predict import Predictor
from bincls.paths import SAMPLE_DATA
from bincls.serve.server import serve_command

ROOT = Path(__file__).resolve().parents[2]
MAX_FILES = 4
MAX_REQUEST_MB = 1


def images(n: int) -> list[Path]:
    ants, bees = sorted((SAMPLE_DATA / "ants").iterdir()), sorted((SAMPLE_DATA / "bees").iterdir())
    return [f for pair in zip(ants, bees) for f in pair][:n]


def files_field(items: list[tuple[str, bytes]]) -> list:
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


def post(url: str, items: list[tuple[str, bytes]], **kw) -> httpx.Response:
    return httpx.post(url + "/predict", files=files_field(items), timeout=60, **kw)


@pytest.fixture(scope="module")
def server(exported_sample_run, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    s = Server(exported_sample_run / "best.onnx", log, "--max-files", str(MAX_FILES),
               "--max-request-mb", str(MAX_REQUEST_MB))  # fmt: skip
    yield s
    s.stop()


@pytest.fixture(scope="module")
def cli_answers(exported_sample_run) -> dict[str, tuple[str, float]]:
    """What `bincls predict` says of each sample image: {file name: (class, P(class 1))}."""
    pred = Predictor(exported_sample_run / "best.pt", device="cpu")
    preds = pred.predict_many([str(f) for f in images(60)])
    return {Path(p.source).name: (p.class_name, p.p_class1) for p in preds}


def test_predict_answers_in_the_order_given_as_the_cli_does(server, cli_answers):
    picked = images(4)
    resp = post(server.url, [(f.name, f.read_bytes()) for f in picked])
    assert resp.status_code == 200, resp.text
    answers = resp.json()
    assert [a["filename"] for a in answers] == [f.name for f in picked]
    for a in answers:
        cls, p1 = cli_answers[a["filename"]]
        assert set(a) == {"filename", "class_name", "probability", "p_class1", "ood", "ood_score", "error"}
        assert a["class_name"] == cls and abs(a["p_class1"] - p1) < 1e-5 and a["ood"] is None
        assert a["ood_score"] is None and a["error"] is None  # no detector in this run
        assert abs(a["probability"] - (p1 if cls == "bees" else 1 - p1)) < 1e-6


def test_health_model_and_docs(server):
    health = httpx.get(server.url + "/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}, "it says nothing of the model"
    info = httpx.get(server.url + "/model").json()
    assert info["class_names"] == ["ants", "bees"] and info["threshold"] == 0.5
    assert info["input"]["preprocessing"]["img_size"] == 48 and info["input"]["dtype"] == "uint8"
    assert info["provenance"]["checkpoint_sha256"] and info["verification"]["passed"]
    assert info["limits"]["max_files"] == MAX_FILES and info["limits"]["max_pixels"] == 120_000_000
    assert httpx.get(server.url + "/docs").status_code == 200
    assert "/predict" in httpx.get(server.url + "/openapi.json").json()["paths"]


def test_bad_input_gets_a_4xx_with_a_json_reason_never_a_500(server, tmp_path):
    good = images(1)[0]
    cases = {
        "notes.txt": fac.text_file(tmp_path / "notes.txt").read_bytes(),
        "empty.jpg": b"",
        "cut.jpg": fac.truncated_jpeg(tmp_path / "cut.jpg").read_bytes(),
        "photo.heic": fac.fake_heic(tmp_path / "photo.heic").read_bytes(),
    }
    reasons = {"notes.txt": "not an image", "empty.jpg": "empty file", "cut.jpg": "truncated or corrupt",
               "photo.heic": "unsupported format (HEIC)"}  # fmt: skip
    for name, data in cases.items():
        resp = post(server.url, [(name, data)])
        assert resp.status_code == 422, (name, resp.status_code, resp.text)
        (problem,) = resp.json()["files"]
        assert problem["filename"] == name and reasons[name] in problem["reason"]
    # One bad file among good ones: the good ones are answered, the bad one gets its reason (as the app does).
    resp = post(server.url, [(good.name, good.read_bytes()), ("notes.txt", cases["notes.txt"])])
    assert resp.status_code == 200, resp.text
    answered, refused = resp.json()
    assert answered["filename"] == good.name and answered["class_name"] and answered["error"] is None
    assert refused["filename"] == "notes.txt" and refused["class_name"] is None
    assert "not an image" in refused["error"]
    # Every file bad: 422 naming each, nothing predicted.
    resp = post(server.url, [("notes.txt", cases["notes.txt"]), ("empty.jpg", b"")])
    assert resp.status_code == 422 and "nothing was predicted" in resp.json()["detail"]
    assert [p["filename"] for p in resp.json()["files"]] == ["notes.txt", "empty.jpg"]
    # Not a form, no files field, the wrong method: FastAPI's own 4xx, as JSON.
    url = server.url + "/predict"
    for resp in (httpx.post(url, json={"files": "x"}), httpx.post(url), httpx.get(url)):
        assert 400 <= resp.status_code < 500 and resp.json()["detail"]


def test_limits_on_files_bytes_and_pixels(server, tmp_path):
    small = images(MAX_FILES + 1)
    resp = post(server.url, [(f.name, f.read_bytes()) for f in small])
    assert resp.status_code == 413 and f"at most {MAX_FILES}" in resp.json()["detail"]
    big = os.urandom(MAX_REQUEST_MB * 2**20 + 1000)
    resp = post(server.url, [("big.jpg", big)])  # refused from its Content-Length, before the body is read
    assert resp.status_code == 413 and "larger than 1,048,576 bytes" in resp.json()["detail"]
    form = httpx.Request("POST", "/", files=files_field([("big.jpg", big)]))
    body, ctype = form.read(), form.headers["Content-Type"]
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))  # streamed: no Content-Length
    resp = httpx.post(server.url + "/predict", content=chunks, headers={"Content-Type": ctype})
    assert resp.status_code == 413 and "larger than" in resp.json()["detail"]
    bomb = fac.png_bomb(tmp_path / "bomb.png").read_bytes()  # 20000 x 20000 pixels in 100 bytes
    resp = post(server.url, [("bomb.png", bomb)])
    reason = resp.json()["files"][0]["reason"]  # refused from the header, before 1.2 GB are decoded
    assert resp.status_code == 413 and "too large" in reason and "pixels" in reason
    ok = post(server.url, [(small[0].name, small[0].read_bytes())])  # the server is still fine
    assert ok.status_code == 200


def test_concurrent_clients_all_get_the_cli_answer(server, cli_answers):
    picked = images(40)

    def client(chunk: list[Path]) -> list[tuple[int, str, str]]:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            out = []
            for f in chunk:
                r = c.post("/predict", files=files_field([(f.name, f.read_bytes())]))
                answer = r.json()[0]["class_name"] if r.status_code == 200 else r.text
                out.append((r.status_code, f.name, answer))
            return out

    with ThreadPoolExecutor(8) as pool:  # 8 clients at once, 5 requests each
        results = [r for chunk in pool.map(client, [picked[i::8] for i in range(8)]) for r in chunk]
    assert len(results) == 40 and all(status == 200 for status, _, _ in results), results
    assert all(cls == cli_answers[name][0] for _, name, cls in results)


@pytest.mark.slow  # exports the run first, in fp32 and INT8
def test_a_run_is_served_in_int8_by_default_with_its_threshold_and_api_key(exported_sample_run, tmp_path):
    run = tmp_path / exported_sample_run.name
    run.mkdir()
    for name in ("best.pt", "config.json", "split.csv", "status.json"):
        (run / name).write_bytes((exported_sample_run / name).read_bytes())
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "threshold": 0.999}))
    env = {"BINCLS_API_KEY": "s3cret", "BINCLS_CACHE_DIR": str(tmp_path)}
    s = Server(run, tmp_path / "server.log", env=env)  # a run is served in INT8 by default
    try:
        assert not [p for p in run.iterdir() if "onnx" in p.name], "the export goes to the cache, not the run"
        assert len(list((tmp_path / "serve").glob("*.onnx"))) == 2, "fp32 and INT8, once, in the cache folder"
        image = images(1)[0]
        for headers in ({}, {"X-API-Key": "wrong"}):
            resp = post(s.url, [(image.name, image.read_bytes())], headers=headers)
            assert resp.status_code == 401 and "X-API-Key" in resp.json()["detail"]
            assert httpx.get(s.url + "/model", headers=headers).status_code == 401
        assert httpx.get(s.url + "/health").status_code == 200, "load balancers check health without a key"
        resp = post(s.url, [(image.name, image.read_bytes())], headers={"X-API-Key": "s3cret"})
        assert resp.status_code == 200 and resp.json()[0]["class_name"] == "ants", "threshold 0.999: ants"
        info = httpx.get(s.url + "/model", headers={"X-API-Key": "s3cret"}).json()
        assert info["threshold"] == 0.999 and info["precision"] == "int8"
        fallback = info["borderline"]  # images near the threshold are scored with the fp32 file
        assert fallback["within"] >= 0.02 and not fallback["model_file"].endswith(".int8.onnx")
    finally:
        s.stop()


def test_other_hosts_need_an_api_key(exported_sample_run):
    env = {k: v for k, v in os.environ.items() if k != "BINCLS_API_KEY"}
    cmd = [sys.executable, "-m", "bincls", "serve", str(exported_sample_run / "best.onnx"), "--host=0.0.0.0"]
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "BINCLS_API_KEY" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_command_for_a_page_to_show():
    assert serve_command("runs/r1") == "python -m bincls serve runs/r1"
    expected = "python -m bincls serve 'runs/my run' --port 9000 --fp32"
    assert serve_command("runs/my run", port=9000, precision="fp32") == expected
    assert serve_command("runs/r1", precision="int8").endswith(" --int8")
    shared = serve_command("runs/r1", host="0.0.0.0")
    assert shared.startswith("BINCLS_API_KEY=") and shared.endswith("--allowed-host '*'")


def test_a_run_is_served_from_its_current_export_beside_the_checkpoint(exported_sample_run, tmp_path):
    """The Predict page and `bincls export` write best.onnx beside the checkpoint: serving reuses it while it
    is of the same checkpoint bytes and threshold, and exports into the cache once it is stale."""
    from bincls.inference.evaluate import save_threshold
    from bincls.paths import cache_dir
    from bincls.serve.server import model_files

    run = Path(shutil.copytree(exported_sample_run, tmp_path / exported_sample_run.name))
    assert model_files(run, "fp32") == (run / "best.onnx", None, None)
    assert model_files(run / "best.pt", "fp32")[0] == run / "best.onnx"
    assert not (cache_dir() / "serve").exists(), "nothing exported again"
    save_threshold(run, 0.42)  # the file's JSON still says 0.5: not what `bincls predict` answers now
    served, exact, threshold = model_files(run, "fp32")
    assert served.parent == cache_dir() / "serve" and exact is None and threshold == 0.42
    assert json.loads(served.with_name(served.name + ".json").read_text())["verification"]["passed"]


def test_a_checkpoint_that_cannot_be_quantized_is_served_in_fp32_saying_why(exported_sample_run, tmp_path,
                                                                           capsys):  # fmt: skip
    """INT8 calibrates on the run's training images: a checkpoint on its own is served in fp32 by default,
    and `--int8` (insisting on it) says why not."""
    from bincls.paths import cache_dir
    from bincls.serve.server import model_files

    lone = tmp_path / "alone" / "model.pt"
    lone.parent.mkdir()
    lone.write_bytes((exported_sample_run / "best.pt").read_bytes())
    served, exact, threshold = model_files(lone)
    assert served.parent == cache_dir() / "serve" and ".int8" not in served.name and exact is None
    assert "Serving fp32" in capsys.readouterr().err
    with pytest.raises(BinclsError, match="INT8 needs the training images"):
        model_files(lone, "int8")
    assert sorted(p.name for p in lone.parent.iterdir()) == ["model.pt"], "nothing written beside it"
