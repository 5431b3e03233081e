"""Shared fixtures: the shipped sample, the optional ../shared data, isolated app folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "bincls" / "sample_data"
SHARED = ROOT.parent / "shared"


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


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
