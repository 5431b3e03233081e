"""Run a command the app shows as a user pastes it: in a plain shell (bash, no virtual environment active,
no PYTHONPATH, a bare PATH), in the project folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What a test keeps of its environment: its own app folders and torch cache (so nothing lands in the user's),
# the home folder and locale; not PYTHONPATH, VIRTUAL_ENV or the PATH of an activated environment.
KEPT = ("HOME", "LANG", "LC_ALL", "TORCH_HOME", "BINCLS_RUNS_DIR", "BINCLS_CACHE_DIR", "BINCLS_UPLOADS_DIR",
        "BINCLS_DATA_ROOT", "TMPDIR")  # fmt: skip


def plain_env(**extra: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in KEPT if k in os.environ}
    return {**env, "PATH": "/usr/local/bin:/usr/bin:/bin", **extra}


def run_pasted(line: str, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess:
    """`line` as pasted into bash in the project folder; raises with its output when it fails."""
    done = subprocess.run(["bash", "-c", line], cwd=ROOT, env=plain_env(**extra), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    said = f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{line}\nexit {done.returncode}\n{said}"
    return done


def start_pasted(line: str, log: Path, **extra: str) -> subprocess.Popen:
    """`line` started as pasted (a server), in its own process group so that it can be stopped whole."""
    return subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=ROOT, env=plain_env(**extra),
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
