"""The run folder: the contract between the engine and whoever watches it (CLI, app, tests).

runs/<run-id>/ holds config.json, split.csv, metrics.jsonl, status.json, best.pt, last.pt, log.txt.
Every file that is rewritten is written atomically (temp file + rename), so a reader, or a crash at
any moment, never sees half a file. metrics.jsonl is only appended to and flushed line by line.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from bincls.errors import BinclsError
from bincls.paths import runs_dir as default_runs_dir
from bincls.training.run_records import MetricsLog, clean_status, parse_metrics

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


def json_text(obj: Any, **kwargs: Any) -> str:
    """JSON that any reader can read back: NaN and inf as null; characters as they are, unless a name
    holds bytes that are not UTF-8 (Python keeps them as lone surrogates), which are then escaped."""
    safe = json_safe(obj)
    text = json.dumps(safe, ensure_ascii=False, **kwargs)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(safe, ensure_ascii=True, **kwargs)
    return text


# Kept in every run folder and given up when the disk is full, so that the run can still record why
# it failed: a status.json and a log line need a few kilobytes.
RESERVE_NAME = ".space-reserve"
RESERVE_BYTES = 128 * 1024
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def reserve_space(folder: str | os.PathLike) -> None:
    """(Re)create the folder's space reserve; best effort (a full or read-only disk goes without)."""
    target = Path(folder) / RESERVE_NAME
    try:
        if not target.exists() or target.stat().st_size < RESERVE_BYTES:
            with open(target, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
    except OSError:
        pass


def _with_space(folder: Path, write) -> None:
    """Run `write()`; when the disk is full, give up the folder's reserve once and try again."""
    try:
        write()
    except OSError as exc:
        reserve = folder / RESERVE_NAME
        if exc.errno not in _NO_SPACE or not reserve.exists():
            raise
        reserve.unlink()
        write()


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = json_text(obj, indent=1)

    def write() -> None:
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    _with_space(path.parent, write)


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):  # also a file cut inside a character (UnicodeDecodeError)
        return default


_TMP = re.compile(r"\.(\d+)\.tmp$")


def remove_stale_temp_files(folder: str | os.PathLike) -> list[str]:
    """Delete the half-written `*.<pid>.tmp` files that a killed process left in `folder` (those of a
    process that is still running are its saves in progress); returns their names."""
    gone = []
    try:
        names = os.listdir(folder)
    except OSError:
        return gone
    for name in names:
        m = _TMP.search(name)
        if m and not psutil.pid_exists(int(m.group(1))):
            try:
                os.unlink(os.path.join(folder, name))
                gone.append(name)
            except OSError:
                pass
    return gone


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


# Words in the command line of a process that trains: `python -m bincls train`, torchrun.
_TRAINING_COMMANDS = ("bincls", "torch.distributed.run", "torchrun")


def pid_alive(pid: Any, started: Any = None) -> bool:
    """True while process `pid` runs and is the one that was recorded: the process that started at
    `started` (psutil's create_time) when that is known; without it (a status written by hand or by an
    old release), a process whose command line says it trains. A pid reused by an unrelated program,
    after a reboot or once pids wrap around, is not alive."""
    if not (isinstance(pid, int) and not isinstance(pid, bool) and pid > 0):
        return False  # never waitpid(-1) or (0): those mean "any child"
    try:
        # A finished child of this process stays a zombie until reaped: reap it, it is gone.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except (ChildProcessError, OSError, OverflowError):
        pass
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if isinstance(started, (int, float)) and not isinstance(started, bool):
            return abs(proc.create_time() - float(started)) < 1.0
        command = proc.cmdline()
        # A process that is exiting has no command line any more: it still counts until it is gone.
        return not command or any(word in part for part in command for word in _TRAINING_COMMANDS)
    except psutil.AccessDenied:
        return True  # it exists; someone else's
    except (psutil.Error, OverflowError, ValueError):
        return False


@dataclass(frozen=True)
class RunFolder:
    path: Path

    # Creating -----------------------------------------------------------------------------------
    @classmethod
    def create(cls, runs_dir: str | os.PathLike | None = None, label: str = "run") -> RunFolder:
        base = Path(runs_dir) if runs_dir else default_runs_dir()
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BinclsError(
                f"Cannot create the runs folder {base}: {exc.strerror or exc}. Set BINCLS_RUNS_DIR "
                "(--runs-dir on the command line) to a writable folder."
            ) from None
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        label = label or "run"
        safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "-" for ch in label)[:40]
        path = base / f"{stamp}-{safe}-{secrets.token_hex(2)}"
        try:
            path.mkdir()
            run = cls(path)
            # The creator's pid: a run whose creator dies before training starts reads as interrupted,
            # instead of staying "queued" forever and blocking every later launch.
            run.set_status(state="queued", created=time.time(), **process_fields(os.getpid()))
        except OSError as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise BinclsError(
                f"Cannot create a run folder in {base}: {exc.strerror or exc}. Free disk space, or set "
                "BINCLS_RUNS_DIR (--runs-dir on the command line) to a writable folder."
            ) from None
        reserve_space(path)
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
        """The status, every known field of its type (see `run_records`), with state "interrupted" when it
        says queued or running but no process of this run is alive (see `pid_alive`)."""
        st = clean_status(read_json(self.path / "status.json", {}))
        st.setdefault("state", "unknown")
        if st["state"] in ACTIVE and not pid_alive(st.get("pid"), st.get("pid_started")):
            st["state"] = "interrupted"
        return st

    def set_status(self, **fields: Any) -> dict:
        if "pid" in fields and "pid_started" not in fields:  # a new process: record who it is
            fields["pid_started"] = process_started(fields["pid"]) if fields["pid"] else None
        st = read_json(self.path / "status.json", {})
        st = clean_status(st) if isinstance(st, dict) else {}  # a damaged status is rewritten whole
        st.pop("damaged", None)
        st.update(fields, updated=time.time())
        write_json_atomic(self.path / "status.json", st)
        return st

    def append_metrics(self, record: dict) -> None:
        line = json_text(record) + "\n"

        def write() -> None:
            with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()

        _with_space(self.path, write)

    def metrics_log(self) -> MetricsLog:
        """The usable lines of metrics.jsonl and the numbers of the damaged ones (see `run_records`)."""
        try:
            data = (self.path / "metrics.jsonl").read_bytes()
        except OSError:
            return MetricsLog()
        return parse_metrics(data)

    def read_metrics(self) -> list[dict]:
        """Every complete, undamaged line; a line being written right now is left for next time."""
        return self.metrics_log().records

    def log(self, message: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")

        def write() -> None:  # a name that is not UTF-8 is shown escaped: the log is for people
            with open(self.log_path, "a", encoding="utf-8", errors="backslashreplace") as f:
                f.write(f"{stamp} {message}\n")

        _with_space(self.path, write)

    def save_checkpoint(self, name: str, checkpoint: dict) -> Path:
        """torch.save to a temp file, then rename: the previous checkpoint survives a failed save.

        torch.save reports a failed write as a RuntimeError ("unexpected pos"); the file it writes to
        keeps the operating system's own error, so the message can say "No space left on device".
        """
        import torch  # here, not at the top: reading run folders (the pages, a busy check) needs no torch

        final = self.path / name
        tmp = self.path / f".{name}.{os.getpid()}.tmp"
        sink = None
        try:
            with open(tmp, "wb") as f:
                sink = _ErrorKeepingFile(f)
                torch.save(checkpoint, sink)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except (OSError, RuntimeError) as exc:
            cause = (sink.error if sink else None) or exc
            why = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
            kept = f"The previous {name} is kept. " if final.exists() else ""
            raise BinclsError(
                f"Could not save the checkpoint {name} in {self.path}: {why}. {kept}"
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
        try:
            (self.path / STOP_FILE).write_text(str(time.time()))
        except OSError as exc:
            why = exc.strerror or exc
            raise BinclsError(f"Cannot ask run {self.id} to stop: {why} ({self.path}).") from None

    def stop_requested(self) -> bool:
        return (self.path / STOP_FILE).exists()

    def clear_stop(self) -> None:
        (self.path / STOP_FILE).unlink(missing_ok=True)

    def clear_if_stale(self) -> bool:
        """A status that says queued or running while no process of the run is alive is rewritten as
        failed, saying so; True when it was stale. (Readers already show it as interrupted.)"""
        raw = clean_status(read_json(self.path / "status.json", {}))
        if raw.get("state") not in ACTIVE or self.status()["state"] != "interrupted":
            return False
        pid = raw.get("pid")
        self.set_status(
            state="failed", finished=time.time(),
            error=f"its training process{f' (pid {pid})' if pid else ''} is gone: it was killed, or the "
            "machine restarted. Resume it to continue from its last checkpoint.",
        )  # fmt: skip
        return True

    def delete(self, runs_dir: str | os.PathLike | None = None) -> None:
        """Delete this run, refusing anything outside the runs folder."""
        base = Path(runs_dir) if runs_dir else default_runs_dir()
        base, target = base.resolve(), self.path.resolve()
        if target.parent != base or not (target / "status.json").exists():
            raise BinclsError(f"Refusing to delete {self.path}: it is not a run folder inside {base}.")
        if self.status().get("state") in ACTIVE:
            raise BinclsError(f"Run {self.id} is still running; stop it before deleting it.")
        try:
            shutil.rmtree(target)
        except OSError as exc:
            why = exc.strerror or exc
            raise BinclsError(f"Could not delete run {self.id}: {why} ({exc.filename}).") from None


class _ErrorKeepingFile:
    """A file for torch.save that remembers the first OSError of a write (torch.save replaces it with a
    RuntimeError of its own)."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.f.flush()


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunFolder]:
    """All run folders, newest first."""
    base = Path(runs_dir) if runs_dir else default_runs_dir()
    if not base.is_dir():
        return []
    runs = [RunFolder(p) for p in base.iterdir() if p.is_dir() and (p / "status.json").exists()]
    return sorted(runs, key=lambda r: r.id, reverse=True)
