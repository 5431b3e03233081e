"""The active run of a runs folder: at most one trains at a time, and the lock that makes "is anything
running? then start" one step across browser tabs and processes."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from bincls.errors import BinclsError
from bincls.runs.folder import ACTIVE, RunFolder, list_runs


class BusyError(BinclsError):
    """Another run is already using the device."""

    def __init__(self, run: RunFolder):
        super().__init__(
            f"Run {run.id} is already training. Only one run at a time can use the device: "
            "wait for it to finish or stop it first."
        )
        self.run = run


@contextmanager
def runs_lock(base: Path):
    """Serialises "is anything running? then start" across browser tabs and processes."""
    try:
        base.mkdir(parents=True, exist_ok=True)
        f = open(base / ".launch.lock", "a")
    except OSError as exc:
        raise BinclsError(
            f"Cannot start a run in {base}: {exc.strerror or exc}. Free disk space, or set BINCLS_RUNS_DIR "
            "(--runs-dir on the command line) to a writable folder."
        ) from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def active_run(
    runs_dir: str | os.PathLike | None = None, besides: RunFolder | None = None
) -> RunFolder | None:
    """The run that is queued or running with a live process, if any (other than `besides`)."""
    for run in list_runs(runs_dir):
        if besides is not None and run.path == besides.path:
            continue
        if run.status().get("state") in ACTIVE:
            return run
    return None
