"""The run folder: the contract between the engine and whoever watches it (CLI, app, tests).

runs/<run-id>/ holds config.json, split.csv, metrics.jsonl, status.json, best.pt, last.pt, log.txt.
Every file that is rewritten is written atomically (temp file + rename), so a reader, or a crash at
any moment, never sees half a file. metrics.jsonl is only appended to and flushed line by line.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bincls.errors import BinclsError
from bincls.json_files import json_text, read_json, reserve_space, with_space_reserve, write_json_atomic
from bincls.paths import runs_dir as default_runs_dir
from bincls.runs.process import pid_alive, process_fields, process_started
from bincls.runs.records import MetricsLog, clean_status, parse_metrics

STATES = ("queued", "running", "stopped", "finished", "failed")
ACTIVE = ("queued", "running")
STOP_FILE = "STOP"


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

        with_space_reserve(self.path, write)

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

        with_space_reserve(self.path, write)

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


def find_checkpoint(run_or_ckpt: str | os.PathLike) -> tuple[Path, RunFolder | None]:
    """A checkpoint file as given, or a run folder's best.pt (last.pt when there is no best yet)."""
    p = Path(run_or_ckpt)
    if p.is_file():
        return p, (RunFolder(p.parent) if (p.parent / "status.json").exists() else None)
    if p.is_dir():
        run = RunFolder.open(p)
        for ckpt in (run.best_checkpoint, run.last_checkpoint):
            if ckpt.is_file():
                return ckpt, run
        raise BinclsError(
            f"Run {p} has no checkpoint yet (no best.pt or last.pt): it has not finished an epoch."
        )
    raise BinclsError(f"{p} does not exist: give a run folder or a .pt checkpoint.")
