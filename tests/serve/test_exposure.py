"""What the server tells whom (issue 24, class 8): only requests addressed to the allowed host names are
answered (a DNS-rebinding page is not), and with an API key set nothing that needs no key names the model:
/health says only that the server is up, the docs pages are off and /openapi.json needs the key."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bincls import BinclsError
from bincls.inference.onnx_predict import OnnxPredictor
from bincls.serve.app import allowed_host_patterns, create_app
from bincls.serve.server import hosts_for


@pytest.fixture(scope="module")
def model(exported_sample_run) -> OnnxPredictor:
    return OnnxPredictor(exported_sample_run / "best.onnx")


def client(app, host: str = "localhost") -> TestClient:
    return TestClient(app, base_url=f"http://{host}:8000")


def test_only_the_allowed_host_names_are_answered(model):
    app = create_app(model)  # the default: the loopback names
    for host in ("localhost", "127.0.0.1", "[::1]"):
        assert client(app, host).get("/model").status_code == 200, host
    rebound = client(app, "attacker.example")  # a page whose name now points at 127.0.0.1
    for path in ("/model", "/health", "/openapi.json"):
        resp = rebound.get(path)
        assert resp.status_code == 400 and "ants" not in resp.text, path
    named = create_app(model, allowed_hosts=["localhost", "api.example.com", "*.corp.example"])
    assert client(named, "api.example.com").get("/model").status_code == 200
    assert client(named, "gpu1.corp.example").get("/model").status_code == 200
    assert client(named, "api.example.org").get("/model").status_code == 400
    anyone = client(create_app(model, allowed_hosts=["*"]), "anything.example")
    assert anyone.get("/health").status_code == 200


def test_the_hosts_a_server_answers_follow_its_binding():
    assert hosts_for("127.0.0.1", None) == ["localhost", "127.0.0.1", "[::1]"]
    assert hosts_for("192.168.1.5", None)[-1] == "192.168.1.5"
    assert hosts_for("::1", ["API.Example.com"]) == ["localhost", "127.0.0.1", "[::1]", "api.example.com"]
    for everywhere in ("0.0.0.0", "::", "[::]"):
        with pytest.raises(BinclsError, match="--allowed-host"):
            hosts_for(everywhere, None)
    assert "*" in hosts_for("0.0.0.0", ["*"])
    for bad in ("", "a*b.example", "*example.com", "two names", "a,b", "http://x/"):
        with pytest.raises(BinclsError, match="not a host name"):
            allowed_host_patterns([bad])


def test_with_a_key_what_needs_none_says_nothing_of_the_model(model):
    app = client(create_app(model, api_key="s3cret"))
    health = app.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    for path in ("/model", "/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
        resp = app.get(path)
        assert resp.status_code == 401 and "ants" not in resp.text and "bees" not in resp.text, path
    keyed = {"X-API-Key": "s3cret"}
    assert app.get("/openapi.json", headers=keyed).json()["info"]["title"] == "bincls: ants or bees"
    assert app.get("/docs", headers=keyed).status_code == 404, "the docs pages are off with a key"
    assert app.get("/redoc", headers=keyed).status_code == 404
    assert app.get("/model", headers=keyed).json()["class_names"] == ["ants", "bees"]
    open_app = client(create_app(model))  # on loopback without a key: the docs are there
    assert open_app.get("/docs").status_code == 200 and open_app.get("/health").json() == {"status": "ok"}
