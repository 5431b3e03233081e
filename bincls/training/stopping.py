"""Stopping a run cleanly between batches: a STOP file, SIGINT or SIGTERM, on any process of the run."""

from __future__ import annotations

import signal
import threading

import torch

from bincls.runs.folder import RunFolder
from bincls.training.distributed import World, any_flags


class StopRequested(Exception):
    """Raised between batches when a stop was asked for (STOP file, SIGINT, SIGTERM)."""


class StopFlag:
    """SIGINT/SIGTERM set a flag; the loop stops cleanly after the current batch."""

    def __init__(self, run: RunFolder | None, world: World, device: torch.device | None = None):
        self.run, self.world, self.device = run, world, device
        self.signalled = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signalled = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def requested(self) -> bool:
        """This process's own view: a signal, or (on the main process) the run's STOP file."""
        file = self.run is not None and self.world.is_main and self.run.stop_requested()
        return self.signalled or file

    def check(self) -> None:
        if any_flags(self.world, [self.requested()], self.device)[0]:
            raise StopRequested()
