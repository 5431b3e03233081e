"""The run folder: the contract between the engine and whoever watches it (CLI, app, tests).

runs/<run-id>/ holds config.json, split.csv, metrics.jsonl, status.json, best.pt, last.pt, log.txt.
Every file that is rewritten is written atomically (temp file + rename), so a reader, or a crash at
any moment, never sees half a file. metrics.jsonl is only appended to and flushed line by line.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import torch

from bincls.errors import BinclsError
from bincls.paths import runs_dir as default_runs_dir

STATES = ("queued", "running", "stopped", "finished", "failed")
ACTIVE = ("queued", "running")
STOP_FILE = "STOP"


def json_safe(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every line stays valid JSON for any reader."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(json_safe(obj), f, indent=1, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None when there is no such process."""
    try:
        return psutil.Process(int(pid)).create_time()
    except (psutil.Error, ValueError, TypeError):
        return None


def process_fields(pid: int) -> dict:
    """What a status records of a run's process: its pid, and its start time, which tells it apart from
    an unrelated process that got the same pid later (after a reboot, or once pids wrap around)."""
    return {"pid": pid, "pid_started": process_started(pid)}


def pid_alive(pid: int | None, started: float | None = None) -> bool:
    """True while process `pid` runs and, when `started` is given, is the process that started then."""
    if not pid:
        return False
    try:
        # A finished child of this process stays a zombie until reaped: reap it, it is gone.
        if os.waitpid(int(pid), os.WNOHANG)[0] == int(pid):
            return False
    except (ChildProcessError, OSError, ValueError):
        pass
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - float(started)) < 1.0
    except psutil.AccessDenied:
        return True  # it exists; someone else's
    except (psutil.Error, ValueError, TypeError):
        return False


@dataclass(frozen=True)
class RunFolder:
    path: Path

    # Creating -----------------------------------------------------------------------------------
    @classmethod
    def create(cls, runs_dir: str | os.PathLike | None = None, label: str = "run") -> RunFolder:
        base = Path(runs_dir) if runs_dir else default_runs_dir()
        base.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in label)[:40]
        path = base / f"{stamp}-{safe}-{secrets.token_hex(2)}"
        path.mkdir()
        run = cls(path)
        # The creator's pid: a run whose creator dies before training starts reads as interrupted,
        # instead of staying "queued" forever and blocking every later launch.
        run.set_status(state="queued", created=time.time(), **process_fields(os.getpid()))
        return run

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunFolder:
        p = Path(path)
        if p.is_file() and p.suffix == ".pt":
            p = p.parent
        if not (p / "status.json").exists() and not (p / "config.json").exists():
            raise BinclsError(f"{p} is not a bincls run folder (it has no status.json or config.json).")
        return cls(p)

    @property
    def id(self) -> str:
        return self.path.name

    # Files --------------------------------------------------------------------------------------
    @property
    def best_checkpoint(self) -> Path:
        return self.path / "best.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "last.pt"

    @property
    def split_path(self) -> Path:
        return self.path / "split.csv"

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    def config(self) -> dict:
        cfg = read_json(self.path / "config.json", {})
        return cfg if isinstance(cfg, dict) else {}  # edited by hand into something else: no settings

    def write_config(self, config: dict) -> None:
        write_json_atomic(self.path / "config.json", config)

    def status(self) -> dict:
        """The status, with state "interrupted" when it says running but its process is gone."""
        st = read_json(self.path / "status.json", {})
        st = st if isinstance(st, dict) else {}
        st.setdefault("state", "unknown")
        if st["state"] in ACTIVE and st.get("pid") and not pid_alive(st.get("pid"), st.get("pid_started")):
            st["state"] = "interrupted"
        return st

    def set_status(self, **fields: Any) -> dict:
        if "pid" in fields:  # a new process: the old one's start time no longer identifies it
            fields.setdefault("pid_started", None)
        st = read_json(self.path / "status.json", {}) or {}
        st.update(fields, updated=time.time())
        write_json_atomic(self.path / "status.json", st)
        return st

    def append_metrics(self, record: dict) -> None:
        line = json.dumps(json_safe(record), ensure_ascii=False)
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    def read_metrics(self) -> list[dict]:
        """Every complete line; a line being written right now (no newline yet) is left for next time."""
        try:
            with open(self.path / "metrics.jsonl", encoding="utf-8") as f:
                text = f.read()
        except OSError:
            return []
        out = []
        for line in text.split("\n")[:-1]:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("kind") == "resumed":
                out = _before_resume(out, rec)
            elif isinstance(rec, dict):
                out.append(rec)
        return out

    def log(self, message: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {message}\n")

    def save_checkpoint(self, name: str, checkpoint: dict) -> Path:
        """torch.save to a temp file, then rename: the previous checkpoint survives a failed save."""
        final = self.path / name
        tmp = self.path / f".{name}.{os.getpid()}.tmp"
        try:
            torch.save(checkpoint, tmp)
            os.replace(tmp, final)
        except OSError as exc:
            kept = f"The previous {name} is kept. " if final.exists() else ""
            raise BinclsError(
                f"Could not save the checkpoint {name} in {self.path}: {exc.strerror or exc}. {kept}"
                "Free disk space or make the runs folder writable, then resume the run."
            ) from None
        finally:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        return final

    # Stopping -----------------------------------------------------------------------------------
    def request_stop(self) -> None:
        (self.path / STOP_FILE).write_text(str(time.time()))

    def stop_requested(self) -> bool:
        return (self.path / STOP_FILE).exists()

    def clear_stop(self) -> None:
        (self.path / STOP_FILE).unlink(missing_ok=True)

    def delete(self, runs_dir: str | os.PathLike | None = None) -> None:
        """Delete this run, refusing anything outside the runs folder."""
        base = Path(runs_dir) if runs_dir else default_runs_dir()
        base, target = base.resolve(), self.path.resolve()
        if target.parent != base or not (target / "status.json").exists():
            raise BinclsError(f"Refusing to delete {self.path}: it is not a run folder inside {base}.")
        if self.status().get("state") in ACTIVE:
            raise BinclsError(f"Run {self.id} is still running; stop it before deleting it.")
        shutil.rmtree(target)


def _before_resume(records: list[dict], marker: dict) -> list[dict]:
    """Drop what a killed attempt logged after the checkpoint that the run resumed from."""
    epoch, step = marker.get("epoch", 0), marker.get("global_step", 0)
    return [
        r
        for r in records
        if not (r.get("kind") == "step" and r.get("global_step", 0) > step)
        and not (r.get("kind") == "epoch" and r.get("epoch", 0) > epoch)
    ]


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunFolder]:
    """All run folders, newest first."""
    base = Path(runs_dir) if runs_dir else default_runs_dir()
    if not base.is_dir():
        return []
    runs = [RunFolder(p) for p in base.iterdir() if p.is_dir() and (p / "status.json").exists()]
    return sorted(runs, key=lambda r: r.id, reverse=True)
