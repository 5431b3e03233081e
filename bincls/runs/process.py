"""Is a run's process alive? A pid with its start time, so a pid reused by another program is not."""

from __future__ import annotations

import os
from typing import Any

import psutil

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
