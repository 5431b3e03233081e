"""Follow a run's metrics.jsonl as it grows: each read parses only the lines added since the last one.

A page that follows a live run reads the metrics every second or two; parsing the whole file each time
grows with the run (a long run has tens of thousands of step lines). `MetricsTail.read()` gives the same
records as `RunFolder.read_metrics()`, reading only what was appended, and starts over when the file was
replaced or a resumed attempt voided some of its lines.
"""

from __future__ import annotations

import threading

from bincls.runs.folder import RunFolder
from bincls.runs.records import parse_metrics


class MetricsTail:
    def __init__(self, run: RunFolder):
        self.run = run
        self._offset = 0
        self._records: list[dict] = []
        self._file_id: tuple[int, int] | None = None
        self._lock = threading.Lock()  # one tail may be shared by the sessions following the same run

    def read(self) -> list[dict]:
        """Every record so far (a copy of the list: the caller may keep it while the tail grows)."""
        with self._lock:
            path = self.run.path / "metrics.jsonl"
            try:
                stat = path.stat()
            except OSError:
                self._reset()
                return []
            file_id = (stat.st_dev, stat.st_ino)
            if file_id != self._file_id or stat.st_size < self._offset:  # replaced or cut: from the start
                self._reset()
                self._file_id = file_id
            if stat.st_size > self._offset:
                self._append_new(path)
            return list(self._records)

    def _reset(self) -> None:
        self._offset, self._records, self._file_id = 0, [], None

    def _append_new(self, path) -> None:
        with open(path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written now is left for next time
        self._offset += len(complete)
        # The same checks as read_metrics (damaged lines skipped), and a "resumed" marker voids what the
        # killed attempt logged after its checkpoint, in the records read before as well.
        self._records = parse_metrics(complete, self._records).records
