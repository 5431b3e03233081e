"""MetricsTail: what the Train page's live panel reads every 2 s (issue 17, item 3: watching must not slow the
run). The same records as RunFolder.read_metrics(), parsing only what was appended since the last read."""

from __future__ import annotations

import json
import os

from bincls.runs.folder import RunFolder
from bincls.runs.metrics_tail import MetricsTail
from bincls.runs import records as run_records


def _steps(run: RunFolder, first: int, last: int) -> None:
    for s in range(first, last + 1):
        run.append_metrics({"kind": "step", "epoch": 1, "step": s, "steps_per_epoch": 100, "global_step": s,
                            "loss": 1.0 / s})


def test_it_gives_what_read_metrics_gives_and_parses_each_line_once(tmp_path, monkeypatch):
    run = RunFolder.create(tmp_path)
    tail = MetricsTail(run)
    assert tail.read() == []  # no metrics file yet
    parsed = []
    real_loads = json.loads
    monkeypatch.setattr(run_records.json, "loads", lambda s: parsed.append(s) or real_loads(s))
    _steps(run, 1, 50)
    got = tail.read()
    assert len(parsed) == 50
    assert got == run.read_metrics()  # (read_metrics parses with json.loads too: count before it)
    run.append_metrics({"kind": "epoch", "epoch": 1, "global_step": 50, "val_loss": 0.6})
    _steps(run, 51, 53)
    parsed.clear()
    got = tail.read()
    assert len(parsed) == 4, "the second read parsed only the four new lines"
    assert got == run.read_metrics()
    parsed.clear()
    assert tail.read() == got and parsed == []  # nothing new: nothing parsed

def test_a_damaged_line_is_skipped_as_read_metrics_skips_it(tmp_path):
    run = RunFolder.create(tmp_path)
    tail = MetricsTail(run)
    _steps(run, 1, 2)
    with open(run.path / "metrics.jsonl", "ab") as f:
        f.write(b'{"kind": "step", "epoch": "one"}\n\xff\xfe\n')  # a hand-edited line, bytes not UTF-8
    _steps(run, 3, 3)
    assert [r["global_step"] for r in tail.read()] == [1, 2, 3]
    assert tail.read() == run.read_metrics()


def test_a_line_being_written_waits_for_its_end(tmp_path):
    run = RunFolder.create(tmp_path)
    _steps(run, 1, 2)
    with open(run.path / "metrics.jsonl", "a") as f:
        # the trainer is in the middle of this line
        f.write('{"kind": "step", "epoch": 1, "step": 3, "steps_per_epoch": 9, "loss": 1, "global_s')
    tail = MetricsTail(run)
    assert [r["global_step"] for r in tail.read()] == [1, 2]
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('tep": 3}\n')
    assert [r["global_step"] for r in tail.read()] == [1, 2, 3]


def test_a_resume_voids_what_the_killed_attempt_logged_after_its_checkpoint(tmp_path):
    run = RunFolder.create(tmp_path)
    tail = MetricsTail(run)
    _steps(run, 1, 10)
    run.append_metrics({"kind": "epoch", "epoch": 1, "global_step": 10})
    _steps(run, 11, 14)  # killed here; the checkpoint was at the end of epoch 1
    assert len(tail.read()) == 15
    run.append_metrics({"kind": "resumed", "epoch": 1, "global_step": 10})
    _steps(run, 11, 12)
    records = tail.read()
    assert records == run.read_metrics()
    assert [r.get("global_step") for r in records if r["kind"] == "step"] == list(range(1, 13))


def test_a_replaced_or_shortened_file_is_read_from_the_start(tmp_path):
    run = RunFolder.create(tmp_path)
    tail = MetricsTail(run)
    _steps(run, 1, 5)
    assert len(tail.read()) == 5
    fresh = run.path / "metrics.new"
    one = {"kind": "step", "epoch": 1, "step": 1, "steps_per_epoch": 9, "global_step": 1, "loss": 0.5}
    fresh.write_text(json.dumps(one) + "\n")
    os.replace(fresh, run.path / "metrics.jsonl")  # another file under the same name
    assert tail.read() == run.read_metrics() == [one]
    (run.path / "metrics.jsonl").unlink()
    assert tail.read() == []
