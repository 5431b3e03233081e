"""The Train page through Streamlit's AppTest: settings, summary, a real background run, busy, stop."""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from pathlib import Path

import pytest
from appsupport import shown
from streamlit.testing.v1 import AppTest

from bincls.paths import runs_dir
from bincls.runs.active import active_run
from bincls.runs.folder import ACTIVE
from bincls.training.launcher import stop_run
from bincls.training.recipes import RECIPES
from pages.support.shared.commands import interpreter
from pages.support.shared.keys import TRAIN_KEYS
from pages.support.train import settings

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _open_train_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def train_page():
    yield _open_train_page()
    _stop_active_runs()


def _stop_active_runs() -> None:
    """No test leaves a training process behind: ask it to stop, then kill it if it will not."""
    run = active_run(runs_dir())
    if run is None:
        return
    stop_run(run)
    deadline = time.time() + 30
    while time.time() < deadline and run.status()["state"] in ACTIVE:
        time.sleep(0.3)
    pid = run.status().get("pid")
    if run.status()["state"] in ACTIVE and pid:
        os.killpg(os.getpgid(pid), signal.SIGKILL)


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _start(at: AppTest, epochs: int, img_size: int = 64) -> None:
    at.number_input(key=TRAIN_KEYS["img_size"]).set_value(img_size).run()
    at.number_input(key=TRAIN_KEYS["epochs"]).set_value(epochs)
    at.number_input(key=TRAIN_KEYS["patience"]).set_value(0)
    _button(at, "Train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _loss_chart_points(at: AppTest) -> dict[str, int]:
    charts = at.get("plotly_chart")
    if not charts:
        return {}
    spec = json.loads(charts[0].proto.spec)
    return {d["name"]: len(d.get("x") or []) for d in spec["data"]}


def _poll(at: AppTest, done, timeout: float = 180) -> None:  # a loaded CI machine starts runs slowly
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if done(at):
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out; status: {active_run(runs_dir()) and active_run(runs_dir()).status()}")


def test_form_renders_with_small_cnn_and_its_summary(train_page):
    """With no pretrained weights here (the tests' empty torch hub cache), auto's recipe is scratch:
    the page says so, and every setting shows the recipe's value."""
    at = train_page
    assert at.radio(key=TRAIN_KEYS["preset"]).value == "auto"
    notes = [i.value for i in at.info]
    assert any("Auto chose **scratch**" in n and "no pretrained weights here" in n for n in notes)
    assert at.selectbox(key=TRAIN_KEYS["model"]).value == "small-cnn"
    assert at.number_input(key=TRAIN_KEYS["img_size"]).value == RECIPES["scratch"]["img_size"]
    assert at.selectbox(key=TRAIN_KEYS["optimizer"]).value == RECIPES["scratch"]["optimizer"]
    assert at.number_input(key=TRAIN_KEYS["lr"]).value == pytest.approx(RECIPES["scratch"]["lr"])
    assert at.number_input(key=TRAIN_KEYS["time_budget"]).value == RECIPES["scratch"]["time_budget"] / 60
    assert "Bundled sample" in at.markdown[0].value and "42 train" in at.markdown[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Total params"].replace(",", "")) > 10_000 and metrics["Size"].endswith("MB")
    table = at.dataframe[0].value
    assert {"Layer", "Output shape", "Params"} <= set(table.columns) and table["Params"].sum() > 10_000
    weights = [r for r in at.radio if r.key == TRAIN_KEYS["weights"]]
    assert not weights, "a scratch model has no weights choice"
    # A chosen optimizer brings its own default learning rate; a pretrainable model shows the weights
    # choice, set to what works here (no weights at hand: none) at the model's own input size.
    at.selectbox(key=TRAIN_KEYS["optimizer"]).set_value("sgd").run()
    assert at.number_input(key=TRAIN_KEYS["lr"]).value == pytest.approx(1e-2)
    at.selectbox(key=TRAIN_KEYS["model"]).set_value("mobilenet_v3_small").run()
    assert at.number_input(key=TRAIN_KEYS["img_size"]).value == 224
    assert at.radio(key=TRAIN_KEYS["weights"]).value == "none"
    assert at.selectbox(key=TRAIN_KEYS["optimizer"]).value == "sgd", "a setting the user chose stays put"
    assert not at.exception and not at.error


def test_settings_start_from_the_recipe(monkeypatch):
    """The page shows the preset's recipe: change the recipe and the page follows."""
    changed = {"epochs": 7, "patience": 2, "schedule": "none", "augment": False, "precision": "fp32",
               "weight_decay": 0.01}  # fmt: skip
    monkeypatch.setitem(RECIPES, "scratch", {**RECIPES["scratch"], **changed})
    settings._resolved.clear()  # the page caches what the preset resolves to for a minute
    at = _open_train_page()
    settings._resolved.clear()
    shown = {name: at.session_state[TRAIN_KEYS[name]] for name in changed if name != "precision"}
    assert shown == {k: v for k, v in changed.items() if k != "precision"}


def test_the_default_settings_are_the_default_command(train_page):
    """Untouched, the page's settings are the recipe's: the command is the plain default command, with the
    app's own Python (a bare `python` may lack the packages), from the project folder."""
    default = [interpreter(), "-m", "bincls", "train", "bincls/sample_data"]
    assert train_page.code[0].value == shlex.join(default)


def test_a_pretrained_preset_without_weights_says_so_before_the_press(train_page):
    at = train_page
    at.radio(key=TRAIN_KEYS["preset"]).set_value("best").run()
    assert any("there are none here" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Train").disabled


@pytest.mark.slow
def test_a_run_started_from_the_page_shows_live_metrics_then_results(train_page):
    at = train_page
    _start(at, epochs=2)
    run = active_run(runs_dir())
    assert run is not None
    _poll(at, lambda a: _loss_chart_points(a).get("val loss", 0) >= 1)
    assert any(c.value.startswith("Epoch ") for c in at.caption)
    _poll(at, lambda a: any("Finished" in s.value for s in a.success))
    metrics = {m.label for m in at.metric}
    assert {"Best epoch", "Val accuracy", "Val F1", "Val AUROC", "Val loss"} <= metrics
    assert _loss_chart_points(at)["val loss"] == 2
    assert any("evaluate" in link.proto.page for link in at.get("page_link"))
    assert run.status()["state"] == "finished"


@pytest.mark.slow
def test_stop_ends_the_run_as_stopped(train_page):
    at = train_page
    _start(at, epochs=200, img_size=32)
    run = active_run(runs_dir())
    assert run is not None
    _poll(at, lambda a: run.status()["state"] == "running" and any(b.label == "Stop" for b in a.button))
    # A second Train while the run is active is refused with a message naming that run (200 epochs: the
    # run is surely still going; two epochs on the sample can end before the second press).
    _button(at, "Train").click().run()
    warnings = [shown(w.value) for w in at.warning]
    assert any("already training" in w and run.id in w for w in warnings), warnings
    assert active_run(runs_dir()).id == run.id
    _button(at, "Stop").click().run()
    assert run.stop_requested()
    _poll(at, lambda a: any("Stopped on request" in i.value for i in a.info))
    assert run.status()["state"] == "stopped"
    assert run.last_checkpoint.exists() or not [m for m in run.read_metrics() if m["kind"] == "step"]


def test_command_line_shows_the_settings_as_commands(train_page):
    at = train_page
    at.selectbox(key=TRAIN_KEYS["optimizer"]).set_value("sgd").run()
    codes = [c.value for c in at.code]
    single = next(c for c in codes if c.startswith(f"{interpreter()} -m bincls train"))
    assert "--optimizer sgd" in single and "--model" not in single  # small-cnn is the default: left out
    assert "--lr" not in single  # sgd's own default learning rate
    torchrun = f"{interpreter()} -m torch.distributed.run --nproc_per_node=2 -m bincls train"
    assert any(c.startswith(torchrun) and "sgd" in c for c in codes)


@pytest.mark.slow
def test_resume_button_continues_a_stopped_run_to_the_end(train_page):
    at = train_page
    _start(at, epochs=60, img_size=32)
    run = active_run(runs_dir())
    assert run is not None
    _poll(
        at,
        lambda a: (
            any(r["kind"] == "epoch" for r in run.read_metrics()) and any(b.label == "Stop" for b in a.button)
        ),
    )
    _button(at, "Stop").click().run()
    _poll(at, lambda a: any(b.label == "Resume" for b in a.button))
    stopped_after = len([r for r in run.read_metrics() if r["kind"] == "epoch"])
    assert stopped_after < 60
    _button(at, "Resume").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _poll(at, lambda a: any("Finished 60 of 60" in s.value for s in a.success), timeout=300)
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == list(range(1, 61))
    assert run.status()["resumes"] == 1


def test_several_gpus_offer_use_all_and_show_the_torchrun_command(monkeypatch):
    import streamlit as st
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)  # this machine has none: pretend
    st.cache_data.clear()
    try:
        at = _open_train_page()
        assert at.toggle(key=TRAIN_KEYS["all_gpus"]).label == "Use all 4 GPUs"
        torchrun = f"{interpreter()} -m torch.distributed.run --nproc_per_node=4 -m bincls"
        assert at.code[0].value.startswith(torchrun)
    finally:
        st.cache_data.clear()


@pytest.mark.slow
def test_precision_and_memory_budget_reach_the_run(train_page):
    at = train_page
    at.number_input(key=TRAIN_KEYS["img_size"]).set_value(32).run()
    at.text_input(key=TRAIN_KEYS["memory_budget"]).set_value("lots").run()
    # The page says what is wrong before the press, and Train cannot start it.
    errors = [shown(e.value) for e in at.error]
    assert any("memory_budget must be a size" in e for e in errors), errors
    assert _button(at, "Train").disabled
    assert active_run(runs_dir()) is None  # nothing started
    at.selectbox(key=TRAIN_KEYS["precision"]).set_value("fp32")
    at.text_input(key=TRAIN_KEYS["memory_budget"]).set_value("64K")
    at.number_input(key=TRAIN_KEYS["epochs"]).set_value(1).run()
    _button(at, "Train").click().run()
    run = active_run(runs_dir())
    assert run is not None and not at.error
    assert run.config()["precision"] == "fp32" and run.config()["memory_budget"] == "64K"
    _poll(at, lambda a: run.status()["state"] not in ACTIVE, timeout=180)
    status = run.status()
    assert status["state"] == "finished" and status["precision"] == "fp32"
    assert status["data_mode"] == "stream"  # 64K is below the decoded images: it streams


def test_every_bound_the_page_shows_is_the_schemas(imagenet_hub):
    """The Train page draws each setting from the schema (bincls.training.config): for every number the page
    shows, its lowest and highest values are the schema's, so the page never offers what a run refuses."""
    from bincls.training.config import page_settings

    at = _open_train_page()
    at.selectbox(key=TRAIN_KEYS["model"]).set_value("mobilenet_v2").run()
    at.radio(key=TRAIN_KEYS["freeze_backbone"]).set_value("finetune").run()  # shows "head epochs" too
    checked = set()
    for name, f in page_settings().items():
        meta = f.metadata
        if meta["low"] is None and meta["high"] is None:
            continue
        widget = at.number_input(key=TRAIN_KEYS[name])
        scale = 60 if name == "time_budget" else 1  # the page shows minutes
        assert (widget.min, widget.max) == (meta["low"] / scale, meta["high"] / scale), name
        assert widget.label == meta["page"].label
        checked.add(name)
    assert {"lr", "label_smoothing", "img_size", "time_budget", "head_epochs"} <= checked
