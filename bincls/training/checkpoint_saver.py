"""Writing a run's checkpoints, as timm's `CheckpointSaver` does: last.pt (what resuming needs) and best.pt
(the best epoch), each built only when it is written, throttled while epochs are short."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from bincls.runs.folder import RunFolder
from bincls.training.events import Emitter

# Checkpoints are written at most this often while epochs take less: a fast run's sub-second epochs
# would otherwise spend most of their time writing files. A stop or the end of a run writes them at once.
CHECKPOINT_EVERY_S = 10.0

Make = Callable[[], dict]


class CheckpointSaver:
    """Saves checkpoints into the run folder (none on the other processes of a distributed run, which have
    no run folder) and remembers a throttled last.pt, to write it when the run ends or stops."""

    def __init__(self, run: RunFolder | None, emit: Emitter):
        self.run, self.emit = run, emit
        self.saved_at: dict[str, float] = {}  # checkpoint name -> time.monotonic() of its last write
        self.pending_last: Make | None = None  # a last.pt that throttling held back

    def save(self, name: str, make: Make, throttle: bool = False) -> bool:
        """Write checkpoint `name` (built by `make` only when it is written); with `throttle`, at most every
        CHECKPOINT_EVERY_S seconds. True when written (or when this process writes nothing)."""
        if self.run is None:
            return True
        if throttle and time.monotonic() - self.saved_at.get(name, -math.inf) < CHECKPOINT_EVERY_S:
            return False
        self.emit("checkpoint_saved", name.removesuffix(".pt"), self.run.save_checkpoint(name, make()))
        self.saved_at[name] = time.monotonic()
        return True

    def save_last(self, make: Make, throttle: bool = False) -> None:
        """last.pt; a throttled one that was not written is kept to be written by `flush`."""
        self.pending_last = None if self.save("last.pt", make, throttle) else make

    def flush(self) -> None:
        """Write the last.pt that throttling held back (built now, from the state as it is now)."""
        if self.pending_last is not None:
            self.save_last(self.pending_last)
