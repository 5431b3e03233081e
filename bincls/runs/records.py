"""What a run folder's status.json and metrics.jsonl may hold, checked as they are read.

A run folder outlives the process that wrote it: a disk can cut a line inside a character, a person can
edit a file by hand, an older or newer release can have written it. Readers (resume, the Train and Runs
pages, the CLI) get only values of the types they expect: a damaged metrics line is skipped and counted,
a status field of the wrong type is dropped and named, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bincls.checks import int_at_least, is_int, is_number, optional


_number_or_null = optional(is_number)


def _text(v: Any) -> bool:
    return isinstance(v, str)


# status.json: the type each known field must have. Unknown fields are kept (other releases add some).
STATUS_FIELDS = {
    "state": _text,
    "pid": int_at_least(1),
    "pid_started": is_number,
    "processes": int_at_least(1),
    **dict.fromkeys(("created", "started", "finished", "updated"), is_number),
    **dict.fromkeys(("error", "message", "model", "run_id", "device", "device_name", "data_mode", "ended_by",
                     "stop_reason", "preset_note"), lambda v: v is None or isinstance(v, str)),
    "preparing": lambda v: v is None or isinstance(v, dict),
    **dict.fromkeys(("epoch", "step", "global_step", "resumes", "epochs_done", "resumed_from_epoch"),
                    int_at_least(0)),
    **dict.fromkeys(("epochs", "steps_per_epoch"), int_at_least(1)),
    **dict.fromkeys(("train_images", "val_images", "test_images", "skipped_files"), int_at_least(0)),
    "best_epoch": optional(int_at_least(1)),
    **dict.fromkeys(("images_per_s", "eta_s", "best_val_loss", "best_val_accuracy", "pos_weight"),
                    _number_or_null),
    **dict.fromkeys(("last_epoch_metrics", "best_metrics"), lambda v: isinstance(v, dict)),
    "class_names": lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v),
}  # fmt: skip


def clean_status(raw: Any) -> dict:
    """The status with every known field of the right type; what was not is dropped and listed in
    "damaged" (a status that is not a JSON object at all reads as state "unknown")."""
    if not isinstance(raw, dict):
        return {"state": "unknown", "damaged": ["status.json is not a JSON object"]} if raw else {}
    st, damaged = {}, []
    for key, value in raw.items():
        check = STATUS_FIELDS.get(key)
        if check is None or check(value):
            st[key] = value
        else:
            damaged.append(key)
    if damaged:
        st["damaged"] = damaged
    return st


def _all(*checks):
    return lambda rec: all(check(rec) for check in checks)


def _needs(keys: tuple[str, ...], check) -> Any:
    return lambda rec: all(check(rec.get(k)) for k in keys)


def _may(keys: tuple[str, ...], check) -> Any:
    return lambda rec: all(check(rec[k]) for k in keys if k in rec)


def _vals_are_numbers(rec: dict) -> bool:
    return all(
        _number_or_null(v) for k, v in rec.items() if k.startswith("val_") and k != "val_confusion_matrix"
    )


def _confusion(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(
        isinstance(row, list) and len(row) == 2 and all(is_int(n) for n in row) for row in v
    )


# metrics.jsonl: what each kind of line needs so that every reader can use it as it is: the keys readers
# index must be there; every other known key, when there, must have its type.
RECORD_CHECKS = {
    "step": _all(
        _needs(("epoch", "step", "steps_per_epoch"), int_at_least(1)),
        _needs(("loss",), is_number),
        _may(("global_step", "epochs"), int_at_least(1)),
        _may(("lr", "images_per_s", "eta_s", "time"), _number_or_null),
    ),
    "epoch": _all(
        _needs(("epoch",), int_at_least(1)),
        _may(("epoch_time",), is_number),
        _may(("train_loss", "train_accuracy", "val_loss", "val_accuracy"), _number_or_null),
        _may(("lr", "images_per_s", "eta_s", "best_val_loss", "time"), _number_or_null),
        _may(("epochs",), int_at_least(1)),
        _may(("best_epoch",), optional(int_at_least(1))),
        _may(("val_confusion_matrix",), _confusion),
        _vals_are_numbers,
    ),
    "resumed": _needs(("epoch", "global_step"), int_at_least(0)),
}


@dataclass
class MetricsLog:
    """The usable lines of metrics.jsonl, and the numbers (from 1) of the lines that were skipped."""

    records: list[dict] = field(default_factory=list)
    damaged_lines: list[int] = field(default_factory=list)

    def note(self) -> str | None:
        """A sentence for a log or a page when lines were skipped, else None."""
        bad = self.damaged_lines
        if not bad:
            return None
        shown = ", ".join(map(str, bad[:10])) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        return f"metrics.jsonl: skipped {len(bad)} damaged line(s) (line {shown})"


def parse_metrics(data: bytes, before: list[dict] | None = None) -> MetricsLog:
    """Every complete line (a last line without its newline is being written: left for next time) that
    is UTF-8, JSON, an object and, for the kinds the readers use, of the right shape. A "resumed" marker
    drops what a killed attempt logged after the checkpoint the run resumed from. `before` are the
    records of the lines above `data` (a reader that follows the file passes what it has read so far)."""
    log = MetricsLog(records=list(before or []))
    for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except ValueError:  # not UTF-8 (UnicodeDecodeError is one), not JSON
            rec = None
        check = RECORD_CHECKS.get(rec.get("kind")) if isinstance(rec, dict) else None
        if not isinstance(rec, dict) or not isinstance(rec.get("kind"), str) or (check and not check(rec)):
            log.damaged_lines.append(number)
        elif rec["kind"] == "resumed":
            log.records = _before_resume(log.records, rec)
        else:
            log.records.append(rec)
    return log


def _before_resume(records: list[dict], marker: dict) -> list[dict]:
    """Drop what a killed attempt logged after the checkpoint that the run resumed from."""
    epoch, step = marker["epoch"], marker["global_step"]
    return [
        r
        for r in records
        if not (r["kind"] == "step" and r.get("global_step", 0) > step)
        and not (r["kind"] == "epoch" and r["epoch"] > epoch)
    ]
