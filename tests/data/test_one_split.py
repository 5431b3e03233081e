"""One split for every screen: the Data page's counts, `bincls scan`'s and the Train page's header are
the split a run saves as split.csv, for the same data and seed (issue 23: 365/105/53 shown, 366/105/52
trained, on 523 X-rays)."""

from __future__ import annotations

import json
import shutil

import imagefactory as fac
import pytest
from appsupport import data_page

from bincls.cli import main as cli_main
from bincls.data.split import SplitConfig, allocate, load_split, split_counts
from bincls.runs.folder import RunFolder
from bincls.training.config import TrainConfig
from bincls.training.distributed import World
from bincls.training.events import Emitter
from bincls.training.setup import _data
from pages.support.shared import keys


def xray_like(root):
    """Two classes with odd counts and duplicates: NORMAL has 135 usable images (135 x 10% = 13.5, the
    tie that split the page from the run), plus two byte-identical extra copies; PNEUMONIA 133."""
    fac.make_folder(root / "NORMAL", 135, seed=0, w=20)
    fac.make_folder(root / "PNEUMONIA", 133, seed=1000, w=20)
    normal = sorted((root / "NORMAL").iterdir())
    for k in (0, 1):  # extra copies: left out of training, one copy kept
        shutil.copy(normal[k], root / "NORMAL" / f"copy-{k}.png")
    return root


def run_split(tmp_path, data: list[str], ratios, seed: int) -> dict:
    """The split.csv a run writes, through the run's own data step, from its config as in config.json."""
    cfg = TrainConfig(data=data, split=list(ratios), seed=seed)
    cfg = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))  # as the training process reads it
    run = RunFolder.create(tmp_path / "runs")
    _data(cfg, run, Emitter([]), World(), resume=False)
    table = load_split(run.split_path)
    return split_counts(table, ["NORMAL", "PNEUMONIA"])


def page_split(at) -> dict:
    table = next(d.value for d in at.dataframe if d.value.index.name == "split")
    return {s: {c: int(table.loc[s, c]) for c in ("NORMAL", "PNEUMONIA")} for s in ("train", "val", "test")}


@pytest.mark.parametrize("shares, seed", [((70, 20, 10), 0), ((60, 25, 15), 5)])
def test_the_data_page_shows_the_split_the_run_saves(tmp_path, shares, seed, capsys):
    root = xray_like(tmp_path / "xrays")
    at = data_page(**{keys.DATA_PATHS: [str(root)]})
    at.slider(key=keys.SPLIT_VAL_PCT).set_value(shares[1])
    at.slider(key=keys.SPLIT_TEST_PCT).set_value(shares[2])
    at.number_input(key=keys.SPLIT_SEED_INPUT).set_value(seed)
    at.run()
    assert not at.exception
    shown = page_split(at)
    ratios = at.session_state[keys.SPLIT_RATIOS]  # what the Train page hands the run
    trained = run_split(tmp_path, [str(root)], ratios, seed)
    assert shown == trained
    # bincls scan with the same shares and seed, typed as a user would
    cli_main(["scan", str(root), "--json", "--seed", str(seed), "--split", ",".join(map(str, shares))])
    assert json.loads(capsys.readouterr().out)["split"] == trained
    if shares == (70, 20, 10):
        assert shown["test"]["NORMAL"] == 14 and shown["train"]["NORMAL"] == 94  # 13.5 rounds half up


def test_shares_written_any_way_allocate_alike():
    """The page's (0.7, 0.2, 0.1) after 1 - 0.2 - 0.1, the CLI's "0.7,0.2,0.1" and "70,20,10", and a
    config normalised twice: one allocation, ties included."""
    ways = [
        SplitConfig(round(1 - 0.2 - 0.1, 4), 0.2, 0.1),
        SplitConfig.parse("0.7,0.2,0.1"),
        SplitConfig.parse("70,20,10"),
        SplitConfig.parse("0.7,0.2,0.1").normalized().normalized(),
        SplitConfig(7, 2, 1),
    ]
    for n in (135, 125, 45, 523, 7, 3):
        shares = [c.normalized() for c in ways]
        got = {tuple(allocate(n, (s.train, s.val, s.test))) for s in shares}
        assert len(got) == 1, (n, got)
    assert allocate(135, (0.7, 0.2, 0.1)) == [94, 27, 14]
    assert allocate(125, (0.7, 0.2, 0.1)) == [87, 25, 13]  # 12.5 -> 13: halves round up, not to even
