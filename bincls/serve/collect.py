"""`bincls serve --collect DIR`: keep the images the model was unsure about, for the next round of labels.

An answered image whose P(class 1) lies within `margin` of the threshold, or that is flagged unlike the
training images, is copied into DIR as the client sent it, under a name bincls chooses
(`20250101-120000-123456-0123456789.jpg`: UTC time, then the start of its sha256), with one row in
DIR/collected.csv (`COLUMNS`: the file, the name it was uploaded as, class_name, probability, p_class1,
ood, ood_score, the threshold, why it was kept, when, the model file's sha256). At most `max_items`
images are kept, oldest first out; only files listed in collected.csv under such a name are ever
deleted, so DIR must be new, empty, or a folder collected into before.

Each file is written atomically (a hidden temporary file, then renamed), collected.csv last. A writer
thread does the disk work: an answer never waits for it; when it falls behind (more than `QUEUE_BYTES`
waiting) images are dropped and counted. DIR is then a pile of images for `bincls label`, which may read
collected.csv for the model's guesses; one server at a time collects into a folder (a lock in bincls's
cache folder).
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import os
import queue
import re
import sys
import threading
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from bincls.checks import is_int, is_number
from bincls.errors import BinclsError

SIDECAR = "collected.csv"
COLUMNS = ["file", "uploaded_as", "class_name", "probability", "p_class1", "ood", "ood_score", "threshold",
           "why", "time", "model_sha256"]  # fmt: skip
NAME = re.compile(r"\d{8}-\d{6}-\d{6}-[0-9a-f]{10}\.(jpg|png|bmp|gif|webp|tif|img)")
EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "BMP": "bmp", "GIF": "gif", "WEBP": "webp",
              "TIFF": "tif"}  # fmt: skip
MAX_ITEMS = 1000
MARGIN = 0.1  # near the threshold: P(class 1) within this of it
QUEUE_BYTES = 256 * 2**20  # images waiting for the writer; more are dropped, not queued without end
MAX_FILE_BYTES = 64 * 2**20  # larger uploads are answered but not kept


def read_collected(folder: str | os.PathLike) -> list[dict]:
    """The rows of DIR/collected.csv whose image is bincls's own and still there, oldest first."""
    path = Path(folder) / SIDECAR
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return []
    except (OSError, ValueError, csv.Error) as exc:
        raise BinclsError(f"Cannot read {path}: {exc}") from None
    return [r for r in rows if NAME.fullmatch(r.get("file") or "") and (path.parent / r["file"]).is_file()]


def check_options(max_items: int, margin: float) -> None:
    if not (is_int(max_items) and 1 <= max_items <= 1_000_000):
        raise BinclsError(f"--collect-max must be a whole number from 1 to 1,000,000, got {max_items!r}.")
    if not (is_number(margin) and 0 < margin <= 0.5):
        raise BinclsError(f"--collect-margin must be a number above 0 and at most 0.5, got {margin!r}.")


def _prepare(folder: Path) -> Path:
    """DIR, created when missing; refused when it holds files bincls did not collect."""
    if folder.exists() and not folder.is_dir():
        raise BinclsError(f"--collect {folder} is a file: give a folder (new or empty) for the images.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        names = [e.name for e in os.scandir(folder) if not e.name.startswith(".")]
    except OSError as exc:
        raise BinclsError(f"Cannot use {folder} for --collect: {exc.strerror or exc}") from None
    if names and SIDECAR not in names:
        raise BinclsError(f"--collect {folder} holds files bincls serve did not collect ({names[0]}...): "
                          "give a new or empty folder (collected images are deleted there, oldest first).")
    if not os.access(folder, os.W_OK):
        raise BinclsError(f"Cannot write into {folder} (--collect): choose a folder you can write to.")
    return folder


def _lock(folder: Path):
    """One collecting server per folder: a lock in bincls's cache folder, held while the server runs."""
    from filelock import FileLock, Timeout

    from bincls.paths import cache_dir

    key = hashlib.sha256(os.fsencode(folder.resolve())).hexdigest()[:20]
    where = cache_dir() / "collect"
    where.mkdir(parents=True, exist_ok=True)
    lock = FileLock(where / f"{key}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BinclsError(f"Another bincls serve collects into {folder}: give each its own folder.") from None
    return lock


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class Collector:
    """Keeps what the server was unsure about in `folder` (see the module's docstring)."""

    def __init__(self, folder: str | os.PathLike, max_items: int = MAX_ITEMS, margin: float = MARGIN,
                 model_sha256: str = ""):  # fmt: skip
        check_options(max_items, margin)
        self.folder = _prepare(Path(folder))
        self._lock_file = _lock(self.folder)
        self.max_items, self.margin, self.model_sha256 = max_items, margin, model_sha256
        self.rows = read_collected(self.folder)  # a restarted server goes on where it stopped
        self.kept = self.dropped = self.failed = 0
        self._queue: queue.Queue = queue.Queue()
        self._queued, self._room = 0, threading.Lock()
        self._writer = threading.Thread(target=self._write_loop, name="bincls-collect", daemon=True)
        self._writer.start()

    def why(self, answer: dict, threshold: float) -> str | None:
        reasons = []
        if answer.get("p_class1") is not None and abs(answer["p_class1"] - threshold) < self.margin:
            reasons.append("near the threshold")
        if answer.get("ood"):
            reasons.append("unlike the training images")
        return "; ".join(reasons) or None

    def offer(self, file: BinaryIO, answer: dict, threshold: float) -> bool:
        """Queue the image for keeping when the model was unsure about it; never waits for the disk."""
        why = self.why(answer, threshold)
        if why is None:
            return False
        size = file.seek(0, io.SEEK_END)
        with self._room:
            if size > MAX_FILE_BYTES or self._queued + size > QUEUE_BYTES:
                self.dropped += 1
                return False
            self._queued += size
        file.seek(0)
        when = datetime.datetime.now(datetime.timezone.utc)
        self._queue.put((file.read(size), answer, threshold, why, when))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (for up to `timeout` seconds), then let the folder go."""
        self._queue.put(None)
        self._writer.join(timeout)
        self._lock_file.release()

    def _write_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._keep(*item)
                self.kept += 1
            except Exception as exc:  # noqa: BLE001 - a full disk or a bad upload must not stop the server
                self.failed += 1
                if self.failed == 1 or self.failed % 100 == 0:
                    print(f"--collect: could not keep an image in {self.folder} ({exc}); "
                          f"{self.failed} so far", file=sys.stderr)  # fmt: skip
            finally:
                with self._room:
                    self._queued -= len(item[0])

    def _keep(self, data: bytes, answer: dict, threshold: float, why: str, when: datetime.datetime) -> None:
        # The header only, by the plugins of the formats the server decoded it with.
        fmt = Image.open(io.BytesIO(data), formats=sorted(set(EXTENSIONS) - {"MPO"})).format
        name = f"{when:%Y%m%d-%H%M%S-%f}-{hashlib.sha256(data).hexdigest()[:10]}.{EXTENSIONS.get(fmt, 'img')}"
        _write_atomic(self.folder / name, data)
        row = {k: answer.get(k) for k in ("class_name", "probability", "p_class1", "ood", "ood_score")}
        row.update(file=name, uploaded_as=answer["filename"], threshold=threshold, why=why,
                   time=when.isoformat(timespec="seconds"), model_sha256=self.model_sha256)
        self.rows.append(row)
        gone, self.rows = self.rows[: -self.max_items], self.rows[-self.max_items :]
        text = io.StringIO()
        writer = csv.DictWriter(text, COLUMNS, quoting=csv.QUOTE_ALL, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        _write_atomic(self.folder / SIDECAR, text.getvalue().encode("utf-8"))
        for old in gone:  # after the table no longer lists them
            (self.folder / old["file"]).unlink(missing_ok=True)
