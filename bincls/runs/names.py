"""A run's name: the one it started with (config.json), or one given later (name.txt)."""

from __future__ import annotations

import os

from bincls.errors import BinclsError
from bincls.runs.folder import RunFolder

# A name given after the run started: a file of its own, so that it never races the trainer's writes of
# status.json, and config.json stays what repeats the run.
NAME_FILE = "name.txt"
MAX_NAME = 200


def run_name(run: RunFolder, cfg: dict | None = None) -> str | None:
    """The name given later (name.txt), else the one the run started with (config.json), else None."""
    try:
        given = (run.path / NAME_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        given = ""
    return given or (cfg if cfg is not None else run.config()).get("name") or None


def set_run_name(run: RunFolder, name: str) -> str | None:
    """Name (or rename) a run; an empty name goes back to the one it started with. Returns the name."""
    clean = " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())
    if len(clean) > MAX_NAME:
        raise BinclsError(f"A run name has at most {MAX_NAME} characters; this one has {len(clean)}.")
    path = run.path / NAME_FILE
    try:
        if clean:
            tmp = path.with_name(f".{NAME_FILE}.{os.getpid()}.tmp")
            tmp.write_text(clean + "\n", encoding="utf-8")
            os.replace(tmp, path)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise BinclsError(f"Could not write the name into {path}: {exc.strerror or exc}. "
                          "Make the runs folder writable.") from None  # fmt: skip
    return run_name(run)
