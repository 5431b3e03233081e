"""The project's promises about itself: README commands, CI, sample data."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick)


def test_readme_quick_start_has_exactly_two_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert all(c.startswith("python3 -m venv .venv && ") for c in cmds)
    assert cmds[0].endswith("streamlit run app.py")
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _readme_commands()[1] in ci.splitlines()


def test_sample_keeps_the_original_bytes():
    """The shipped sample is real hymenoptera images, byte for byte (checked when ../shared exists)."""
    sample = ROOT / "bincls" / "sample_data"
    files = sorted(p for p in sample.rglob("*") if p.is_file())
    assert len([f for f in files if f.parent.name == "ants"]) == 30
    assert len([f for f in files if f.parent.name == "bees"]) == 30
    shared = ROOT.parent / "shared" / "data" / "hymenoptera"
    if not shared.exists():
        pytest.skip("../shared is absent")
    originals = {hashlib.sha256(p.read_bytes()).hexdigest() for p in shared.rglob("*") if p.is_file()}
    assert all(hashlib.sha256(f.read_bytes()).hexdigest() in originals for f in files)


def test_engine_imports_nothing_from_streamlit():
    for path in (ROOT / "bincls").glob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+streamlit", path.read_text(), re.M), path
