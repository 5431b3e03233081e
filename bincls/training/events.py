"""What the training loop tells the world, and the listeners that write it down or show it.

The loop knows nothing of who listens: the run-folder writer, the console bar and TensorBoard are
all listeners, and the app reads the run folder the writer keeps.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

from bincls.chance import chance_verdict
from bincls.runs.folder import RunFolder
from bincls.runs.process import process_fields

SUMMARY_FILE = "model_summary.txt"  # the model's layer table, in the run folder


class Listener:
    """Override what you need; every hook is a no-op by default."""

    def attempt_started(self) -> None: ...

    def run_started(self, info: dict) -> None: ...

    def message(self, text: str) -> None: ...

    def preparing(self, what: str, done: int, total: int) -> None: ...

    def resumed(self, info: dict) -> None: ...

    def step(self, record: dict) -> None: ...

    def epoch_end(self, record: dict) -> None: ...

    def checkpoint_saved(self, kind: str, path: Path) -> None: ...

    def run_ended(self, state: str, summary: dict) -> None: ...


class Emitter:
    """Calls every listener in order; a listener that breaks is dropped, the run goes on."""

    def __init__(self, listeners: list[Listener]):
        self.listeners = list(listeners)

    def __call__(self, hook: str, *args) -> None:
        for listener in list(self.listeners):
            try:
                getattr(listener, hook)(*args)
            except Exception as exc:  # noqa: BLE001 - a broken display must not kill a training run
                if isinstance(listener, RunFolderWriter):
                    raise  # the run folder is the record of the run: its failures are real failures
                self.listeners.remove(listener)
                print(
                    f"warning: listener {type(listener).__name__} failed and was removed: {exc}",
                    file=sys.stderr,
                )


class RunFolderWriter(Listener):
    """Keeps status.json, metrics.jsonl and log.txt of a run folder up to date."""

    STATUS_EVERY_S = 0.5  # status.json is rewritten atomically; twice a second is plenty for a UI

    def __init__(self, run: RunFolder):
        self.run = run
        self._last_status = 0.0
        self._beat_chance = run.status().get("beat_chance_epoch")  # kept over a resume
        self._stage: tuple[str, float, int] | None = None  # (what, when it began, done then): for its ETA

    def attempt_started(self) -> None:
        """The process works on the run from now (checking files, features): it is running, not queued."""
        self.run.set_status(state="running", **process_fields(os.getpid()), started=time.time())

    def run_started(self, info: dict) -> None:
        info = dict(info)
        if summary := info.pop("summary_text", None):  # the layer table: a file of its own, not the status
            tmp = self.run.path / f".{SUMMARY_FILE}.tmp"
            tmp.write_text(summary + "\n", encoding="utf-8")
            os.replace(tmp, self.run.path / SUMMARY_FILE)
        self.run.set_status(state="running", **process_fields(os.getpid()), **info)
        self.run.log(f"started: {info.get('model')} on {info.get('device')}")

    def message(self, text: str) -> None:
        self.run.log(text)
        self.run.set_status(message=text, preparing=None)

    def preparing(self, what: str, done: int, total: int) -> None:
        """Work outside the epochs (decoding, the backbone's features, calibration), as a count for a
        progress bar, with the time this stage still needs at its pace so far."""
        now = time.monotonic()
        if self._stage is None or self._stage[0] != what or done < self._stage[2]:
            self._stage = (what, now, done)
        if done < total and now - self._last_status < self.STATUS_EVERY_S:
            return
        self._last_status = now
        _, began, first = self._stage
        rate = (done - first) / (now - began) if done > first and now > began else None
        eta = (total - done) / rate if rate else None
        self.run.set_status(preparing={"what": what, "done": done, "total": total, "eta_s": eta})

    def resumed(self, info: dict) -> None:
        # The marker tells readers that steps logged after this point of the killed attempt are void.
        self.run.append_metrics({"kind": "resumed", **info, "time": time.time()})
        resumes = int(self.run.status().get("resumes") or 0) + 1
        self.run.set_status(error=None, finished=None, resumes=resumes, resumed_from_epoch=info["epoch"])
        self.run.log(f"resumed after epoch {info['epoch']} (step {info['global_step']})")

    def step(self, record: dict) -> None:
        self.run.append_metrics(record)
        now = time.monotonic()
        if now - self._last_status >= self.STATUS_EVERY_S:
            self._last_status = now
            self.run.set_status(
                epoch=record["epoch"],
                step=record["step"],
                steps_per_epoch=record["steps_per_epoch"],
                global_step=record["global_step"],
                images_per_s=record["images_per_s"],
                eta_s=record.get("eta_s"),
            )

    def epoch_end(self, record: dict) -> None:
        self.run.append_metrics(record)
        cm = record.get("val_confusion_matrix") or [[0, 0], [0, 0]]
        if chance_verdict(record.get("val_auroc"), record.get("val_p_std"), sum(cm[0]), sum(cm[1])) is None:
            # The first epoch that did better than guessing: `run_summary.learned_nothing` reads it.
            self._beat_chance = self._beat_chance or record["epoch"]
        self.run.set_status(
            beat_chance_epoch=self._beat_chance,
            preparing=None,
            epoch=record["epoch"],
            eta_s=record.get("eta_s"),
            best_epoch=record.get("best_epoch"),
            best_val_loss=record.get("best_val_loss"),
            last_epoch_metrics={k: v for k, v in record.items() if k != "kind"},
        )
        self.run.log(
            f"epoch {record['epoch']}: train loss {record['train_loss']:.4f} "
            f"acc {record['train_accuracy']:.3f}"
            f" | val loss {record['val_loss']:.4f} acc {record['val_accuracy']:.3f}"
            f" | {record['epoch_time']:.1f}s"
        )

    def checkpoint_saved(self, kind: str, path: Path) -> None:
        self.run.log(f"saved {kind} checkpoint {path.name}")

    def run_ended(self, state: str, summary: dict) -> None:
        self.run.set_status(state=state, finished=time.time(), eta_s=0, **summary)
        self.run.log(f"{state}" + (f": {summary['error']}" if summary.get("error") else ""))


class ConsoleProgress(Listener):
    """A tqdm progress bar per epoch on a terminal (none when the output is a file), and a line per epoch.
    The model in one line; its layer table (160 lines for mobilenet_v2) only with `print_summary`."""

    def __init__(self, stream=None, print_summary: bool = False):
        self.stream = stream or sys.stderr
        self.print_summary = print_summary
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = None

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def run_started(self, info: dict) -> None:
        if self.print_summary and info.get("summary_text"):
            self._print(info["summary_text"])
        elif info.get("params") is not None:
            where = f" (the layers: {info['run_dir']}/{SUMMARY_FILE})" if info.get("run_dir") else ""
            self._print(f"model {info.get('model')}: {info['params']:,} parameters, "
                        f"{info.get('trainable_params', 0):,} trainable{where}")  # fmt: skip
        self._print(
            f"run {info.get('run_id')}: {info.get('model')} on "
            f"{info.get('device_name') or info.get('device')}, {info.get('train_images')} train / "
            f"{info.get('val_images')} val images, {info.get('epochs')} epochs"
        )

    def message(self, text: str) -> None:
        self._print(text)

    def step(self, record: dict) -> None:
        if not self.tty:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=record["steps_per_epoch"], initial=record["step"] - 1, file=self.stream,
                             desc=f"epoch {record['epoch']}/{record['epochs']}", unit="step", leave=False,
                             dynamic_ncols=True)  # fmt: skip
        eta = record.get("eta_s")
        self._bar.set_postfix_str(
            f"loss {record['loss']:.4f}, {record['images_per_s']:.0f} img/s"
            + (f", run ETA {_fmt_s(eta)}" if eta is not None else ""), refresh=False,
        )  # fmt: skip
        self._bar.update(record["step"] - self._bar.n)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def epoch_end(self, record: dict) -> None:
        self._close_bar()
        mark = " *" if record.get("best_epoch") == record["epoch"] else ""
        self._print(
            f"epoch {record['epoch']}/{record['epochs']}: train loss {record['train_loss']:.4f} "
            f"acc {record['train_accuracy']:.3f} | val loss {record['val_loss']:.4f} "
            f"acc {record['val_accuracy']:.3f} f1 {record['val_f1']:.3f} | {record['epoch_time']:.1f}s{mark}"
        )

    def run_ended(self, state: str, summary: dict) -> None:
        self._close_bar()
        if summary.get("error"):
            return  # the CLI prints the error itself
        self._print(
            f"{state}: best epoch {summary.get('best_epoch')}, "
            f"val accuracy {_fmt_num(summary.get('best_val_accuracy'))}"
        )


def _fmt_num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _fmt_s(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class TensorBoardListener(Listener):
    """Scalars for TensorBoard, when the tensorboard package is installed."""

    def __init__(self, log_dir: str | os.PathLike):
        from torch.utils.tensorboard import SummaryWriter  # raises ImportError without tensorboard

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def step(self, record: dict) -> None:
        self.writer.add_scalar("step/loss", record["loss"], record["global_step"])
        self.writer.add_scalar("step/lr", record["lr"], record["global_step"])

    def epoch_end(self, record: dict) -> None:
        for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "val_f1", "val_auroc"):
            if record.get(key) is not None:
                self.writer.add_scalar(f"epoch/{key}", record[key], record["epoch"])
        self.writer.flush()

    def run_ended(self, state: str, summary: dict) -> None:
        self.writer.close()
