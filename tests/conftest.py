"""Shared fixtures: the shipped sample, the optional ../shared data, isolated app folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "bincls" / "sample_data"
# ../shared beside the project; BINCLS_SHARED_DIR names it where the project is checked out elsewhere
# (a git worktree one level deeper).
SHARED = Path(os.environ.get("BINCLS_SHARED_DIR") or ROOT.parent / "shared")


def pytest_configure(config):
    """Module- and session-scoped fixtures run before the per-test isolation below: give the whole
    session its own app folders too, so no test ever writes to the user's cache or runs folder."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="bincls-tests-"))
    for name in ("CACHE", "RUNS", "UPLOADS"):
        os.environ[f"BINCLS_{name}_DIR"] = str(base / name.lower())
    # An empty torch hub cache: the default preset finds no pretrained weights, as on a fresh machine
    # without network, whatever this machine has cached. Tests of the pretrained paths use `imagenet_hub`.
    os.environ["TORCH_HOME"] = str(base / "torch")


def pytest_addoption(parser):
    parser.addoption("--all", action="store_true", help="also run tests marked slow and browser")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--all"):
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("slow") or item.get_closest_marker("browser") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _isolated_app_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own cache, runs and uploads folders: never the user's."""
    base = tmp_path_factory.mktemp("bincls-home")
    for name in ("CACHE", "RUNS", "UPLOADS"):
        monkeypatch.setenv(f"BINCLS_{name}_DIR", str(base / name.lower()))
    yield


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test cleanly when it is absent (a user's fresh clone)."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent (only developer machines and CI have ../shared)")
    return p


@pytest.fixture
def hymenoptera() -> Path:
    return shared_path("data", "hymenoptera")


@pytest.fixture
def face_mask() -> Path:
    return shared_path("data", "face_mask_dirty")


@pytest.fixture
def mobilenet_weights() -> Path:
    return shared_path("weights", "mobilenet_v2_imagenet.pth")


@pytest.fixture(scope="session")
def trained_sample_run(tmp_path_factory) -> Path:
    """One short real run on the shipped sample, trained once per test session (read-only: copy it)."""
    from bincls.training.config import TrainConfig
    from bincls.training.loop import train

    base = tmp_path_factory.mktemp("trained-sample-run")
    return train(TrainConfig(data=[str(SAMPLE)], epochs=1, img_size=48, workers=0), runs_dir=base).run.path


@pytest.fixture
def sample_run(trained_sample_run):
    """That run, copied into this test's own runs folder (the one the app reads)."""
    import shutil

    from bincls.paths import runs_dir
    from bincls.runs.folder import RunFolder

    dest = runs_dir() / trained_sample_run.name
    shutil.copytree(trained_sample_run, dest)
    return RunFolder(dest)


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def imagenet_hub(tmp_path, monkeypatch, mobilenet_weights) -> Path:
    """A torch hub cache holding the shared ImageNet mobilenet_v2 weights under torchvision's own file names,
    as a user's machine has them after one download: `--weights imagenet` and the presets find them."""
    import shutil

    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in ("mobilenet_v2-b0353104.pth", "mobilenet_v2-7ebf99e0.pth"):
        shutil.copy(mobilenet_weights, checkpoints / name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return checkpoints


@pytest.fixture(scope="session")
def exported_sample_run(trained_sample_run, tmp_path_factory) -> Path:
    """A copy of that run with its best.pt exported to best.onnx (pixel input, fp32), once per session."""
    import shutil

    from bincls.inference.export import export_onnx

    dest = tmp_path_factory.mktemp("exported-sample-run") / trained_sample_run.name
    shutil.copytree(trained_sample_run, dest)
    export_onnx(dest)
    return dest


@pytest.fixture(scope="session")
def web_runtime_cache(tmp_path_factory) -> Path:
    """onnxruntime-web fetched from the npm registry and verified once per session. Without the registry
    the test is skipped, except in CI (which reaches it), where that is a failure."""
    from bincls.errors import BinclsError
    from bincls.inference.web_runtime import web_runtime

    base = tmp_path_factory.mktemp("web-runtime-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BINCLS_CACHE_DIR", str(base))
        try:
            web_runtime()
        except BinclsError as exc:
            (pytest.fail if on_ci() else pytest.skip)(f"the web export needs the npm registry: {exc}")
    return base / "web-runtime"


@pytest.fixture
def web_runtime_here(web_runtime_cache) -> Path:
    """That runtime in this test's own cache folder (linked, not copied)."""
    from bincls.paths import cache_dir

    link = cache_dir() / "web-runtime"
    link.symlink_to(web_runtime_cache, target_is_directory=True)
    return link
