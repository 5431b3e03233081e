"""Are two runs really different? McNemar's test on the test images both were evaluated on.

Two accuracies measured on a few dozen images differ by chance more often than not; what tells runs
apart is the images one gets right and the other wrong. The test only holds when both runs saw the
very same images with the very same labels (a label audit's relabelling changes the labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bincls.errors import BinclsError
from bincls.inference.evaluate import Evaluation
from bincls.inference.intervals import mcnemar
from bincls.runs.folder import RunFolder

SIGNIFICANCE = 0.05


@dataclass
class PairedComparison:
    images: int
    right_a: int  # images run A gets right
    right_b: int
    a_only: int  # images only run A gets right
    b_only: int
    p_value: float  # exact McNemar: the chance of a split this lopsided if the runs were equally good

    @property
    def real(self) -> bool:
        return self.p_value < SIGNIFICANCE


def evaluated_images(run: RunFolder) -> dict[str, int] | None:
    """{path: label} of the images `evaluate` scores a run on by default (its test split, else its val
    split), or None when the run has no split table."""
    from bincls.data.split import load_split

    if not run.split_path.exists():
        return None
    split = load_split(run.split_path)
    part = split[split["split"] == "test"]
    if part.empty:
        part = split[split["split"] == "val"]
    return dict(zip(part["path"], part["label"].astype(int)))


def compare_runs(a: Evaluation, b: Evaluation) -> PairedComparison:
    """McNemar's exact test on two evaluations of the same images; BinclsError when they differ."""
    ta, tb = a.table.set_index("path"), b.table.set_index("path")
    if set(ta.index) != set(tb.index):
        raise BinclsError(
            f"The two evaluations are on different images ({len(ta)} and {len(tb)}, "
            f"{len(set(ta.index) & set(tb.index))} shared): McNemar's test needs the same images."
        )
    tb = tb.loc[ta.index]
    if not (ta["true"].to_numpy() == tb["true"].to_numpy()).all():
        raise BinclsError("The two evaluations give some images different labels (a label audit "
                          "relabelled them for one run): McNemar's test needs the same labels.")
    right_a = (ta["true"] == ta["predicted"]).to_numpy()
    right_b = (tb["true"] == tb["predicted"]).to_numpy()
    return PairedComparison(
        images=len(ta), right_a=int(right_a.sum()), right_b=int(right_b.sum()),
        a_only=int(np.sum(right_a & ~right_b)), b_only=int(np.sum(~right_a & right_b)),
        p_value=mcnemar(right_a, right_b),
    )  # fmt: skip
