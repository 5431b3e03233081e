"""Unbounded numbers and tables (issue 24, class 7): a time budget of 1e308 or 300 workers is a one-line
error, the loader never runs more workers than there are cores, and a split.csv that lists a path twice
(continuing a run) is de-duplicated, or refused in one line when its two rows disagree."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from bincls import BinclsError
from bincls.cli import main
from bincls.data.dataset import load_data
from bincls.training.continuation import continued_split
from bincls.training.phases import loader_workers


def test_huge_numbers_on_the_command_line_are_one_line_errors(sample_dir, tmp_path, capsys):
    for flag, value in (("--time-budget", "1e308"), ("--time-budget", "inf"), ("--workers", "300"),
                        ("--workers", "-1"), ("--epochs", "1000000000")):  # fmt: skip
        code = main(["train", str(sample_dir), flag, value, "--runs-dir", str(tmp_path)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error: ") and "\n" not in err, (flag, value, err)
    assert not any(tmp_path.iterdir()), "no run folder was made"


def test_the_loader_never_runs_more_workers_than_cores():
    cores = os.cpu_count() or 1
    assert loader_workers(256) == cores and loader_workers(64) == min(64, cores)
    assert loader_workers(0) == 0 and loader_workers(None) is None


def test_a_split_table_listing_a_path_twice_is_deduplicated_or_refused(sample_dir, tmp_path):
    data = load_data([str(sample_dir)])
    run = tmp_path / "old-run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"")  # continued_split reads the split beside the checkpoint
    table = data.split.copy()
    twice = pd.concat([table, table.iloc[:3]])  # the same rows again: the same split each time
    twice.to_csv(run / "split.csv", index=False)
    messages = []
    kept = continued_split(data, str(run), lambda kind, text: messages.append(text))
    assert (kept.split["split"].values == table["split"].values).all()
    assert "60 images keep their split" in messages[0]
    disagree = table.iloc[:1].copy()
    disagree["split"] = "test" if table.iloc[0]["split"] != "test" else "train"
    pd.concat([table, disagree]).to_csv(run / "split.csv", index=False)
    with pytest.raises(BinclsError, match=r"lists .* in two splits") as exc:
        continued_split(data, str(run), lambda *_: None)
    assert "\n" not in str(exc.value)
