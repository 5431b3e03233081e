"""Where bincls keeps its own files: caches, runs and uploads. Never inside a user's folders."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = Path(__file__).resolve().parent / "sample_data"


def _dir(env: str, default: Path) -> Path:
    p = Path(os.environ.get(env) or default).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def cache_dir() -> Path:
    """Scan and decode caches (`BINCLS_CACHE_DIR`, default ~/.cache/bincls)."""
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return _dir("BINCLS_CACHE_DIR", xdg / "bincls")


def runs_dir() -> Path:
    """Run folders (`BINCLS_RUNS_DIR`, default ./runs beside the app)."""
    return _dir("BINCLS_RUNS_DIR", PROJECT_ROOT / "runs")


def uploads_dir() -> Path:
    """Images uploaded through the app (`BINCLS_UPLOADS_DIR`, default ./uploads beside the app)."""
    return _dir("BINCLS_UPLOADS_DIR", PROJECT_ROOT / "uploads")
