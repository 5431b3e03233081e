"""Start training in a separate process (the same CLI engine), one run per device at a time.

The app calls this, so a run survives page reruns, browser refreshes and even the app server
going away; the app only ever reads the run folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bincls.errors import BinclsError
from bincls.paths import PROJECT_ROOT
from bincls.paths import runs_dir as default_runs_dir
from bincls.runs.active import BusyError, active_run, runs_lock
from bincls.runs.folder import ACTIVE, RunFolder
from bincls.runs.process import pid_alive, process_fields
from bincls.training.config import TrainConfig
from bincls.training.recipes import Resolved, is_resolved, resolve


def claim_new_run(cfg: TrainConfig, runs_dir: str | os.PathLike | None = None) -> RunFolder:
    """The run folder for a training in this process (the `train` command), created only when no other
    run is active in the runs folder, under the same lock as the app's launcher; raises `BusyError`."""
    base = Path(runs_dir) if runs_dir else default_runs_dir()
    with runs_lock(base):
        busy = active_run(base)
        if busy is not None:
            raise BusyError(busy)
        # Queued, with this process's pid: busy from now. (The model may be the preset's to choose yet.)
        run = RunFolder.create(base, label=cfg.name or cfg.model or cfg.preset)
        run.write_config(cfg.to_dict())
        return run


def claim_resume(run: RunFolder) -> None:
    """Check, under the launch lock, that `run` may be resumed in this process and no other run is
    active in its runs folder; then mark it queued by this process. Raises `BinclsError` saying why."""
    status = run.status()
    if status.get("state") in ACTIVE and status.get("pid") in (os.getpid(), os.getppid()):
        check_resumable(run)  # the app's launcher checked and claimed it for this process (or torchrun)
        return
    with runs_lock(run.path.parent):
        busy = active_run(run.path.parent, besides=run)
        if busy is not None:
            raise BusyError(busy)
        check_resumable(run)
        run.set_status(state="queued", **process_fields(os.getpid()))


def start_training(
    cfg: TrainConfig | Resolved, runs_dir: str | os.PathLike | None = None, processes: int = 1
) -> RunFolder:
    """Create the run folder and start `python -m bincls train --run-dir RUN` detached from the caller.

    The preset completes the settings here (unless `cfg` is `preflight`'s `Resolved`), once: config.json
    shows every setting the run will use from the start, and the process trains exactly that.
    With `processes` > 1 the same command runs under torchrun, one process per GPU.
    Raises `BusyError` when another run is active.
    """
    resolved = cfg if isinstance(cfg, Resolved) else None
    if resolved is None and not is_resolved(cfg):
        resolved = resolve(cfg)
    cfg = resolved.config if resolved else cfg
    base = Path(runs_dir) if runs_dir else default_runs_dir()
    with runs_lock(base):
        busy = active_run(base)
        if busy is not None:
            raise BusyError(busy)
        run = RunFolder.create(base, label=cfg.name or cfg.model)
        run.write_config(cfg.to_dict())
        if resolved is not None:
            run.set_status(preset_note=resolved.note)
            run.log(resolved.note)
        _spawn(run, base, ["--run-dir", str(run.path)], processes)
        return run


def check_resumable(run: RunFolder) -> None:
    """Raise a BinclsError that says why, unless the run can be continued."""
    status = run.status()
    state = status.get("state")
    # The launcher marks the run queued with the new process's pid (or torchrun's) before it starts.
    launched_for_us = status.get("pid") in (os.getpid(), os.getppid())
    if state in ACTIVE and not launched_for_us:
        raise BinclsError(f"Run {run.id} is still {state}; it cannot be resumed while it runs.")
    if state == "finished":
        raise BinclsError(f"Run {run.id} finished; there is nothing to resume. Start a new run instead.")
    if not run.config():
        raise BinclsError(f"Run {run.id} has no readable config.json, so it cannot be resumed.")


def resume_training(run: RunFolder, runs_dir: str | os.PathLike | None = None) -> RunFolder:
    """Continue an interrupted, stopped or failed run in the background from its last checkpoint."""
    base = Path(runs_dir) if runs_dir else run.path.parent
    with runs_lock(base):
        busy = active_run(base)
        if busy is not None:
            raise BusyError(busy)
        check_resumable(run)
        run.clear_stop()  # the stop that ended it is done with
        _spawn(run, base, ["--resume", str(run.path)], run.status().get("processes") or 1)
        return run


def _spawn(run: RunFolder, base: Path, args: list[str], processes: int) -> None:
    console = open(run.path / "console.txt", "ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BINCLS_RUNS_DIR": str(base)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    head = [sys.executable, "-m", "bincls"]
    if processes > 1:
        head = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={processes}", "-m", "bincls"]  # fmt: skip
    try:
        proc = subprocess.Popen(
            [*head, "train", *args],
            stdout=console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(PROJECT_ROOT),
            env=env,
            start_new_session=True,  # the run outlives the app server and ignores its Ctrl+C
        )
    except OSError as exc:
        run.set_status(state="failed", error=f"could not start the training process: {exc}")
        raise BinclsError(f"Could not start the training process for run {run.id}: {exc}") from None
    finally:
        console.close()
    # The pid is known before the child writes anything, so the lock holder's successors see it busy.
    run.set_status(state="queued", **process_fields(proc.pid))


def stop_run(run: RunFolder) -> None:
    """Ask a run to stop after its current batch; it saves a checkpoint and marks itself stopped.

    A run whose process is gone (killed, or the machine restarted, its pid maybe another program's now)
    cannot answer: its status is cleared at once instead (see `RunFolder.clear_if_stale`)."""
    if not run.clear_if_stale():
        run.request_stop()


def stop_and_wait(run: RunFolder, timeout: float = 300) -> str:
    """Stop a run and wait until it has said how it ended and its process is gone; returns that state."""
    stop_run(run)
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = run.status()
        if status.get("state") not in ACTIVE and not pid_alive(status.get("pid"), status.get("pid_started")):
            return status["state"]
        time.sleep(0.5)
    raise BinclsError(f"Run {run.id} did not stop within {timeout:.0f} s.")
