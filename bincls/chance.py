"""Whether a model's results can be told from guessing: read from a few numbers, no torch needed, so run
summaries, the training loop and the pages all judge a run the same way."""

from __future__ import annotations

import math

TIED_STD = 1e-5  # probabilities this close together are one answer for every image (a dead network)


def chance_verdict(auroc: float | None, p_std: float | None, n_neg: int, n_pos: int) -> str | None:
    """Why these validation or test results cannot be told from guessing, or None when they can.

    Tied: every image got the same probability (`p_std` ~ 0). At chance: the AUROC is within one standard
    error of 0.5 (its spread under guessing, by Hanley & McNeil's formula, at least 0.05), so a ranking
    by the model is no better than a random one.
    """
    if p_std is not None and p_std < TIED_STD:
        return "it gives every image the same probability"
    if auroc is None or auroc != auroc or not n_neg or not n_pos:
        return None
    band = max(0.05, math.sqrt((n_neg + n_pos + 1) / (12 * n_neg * n_pos)))
    if abs(auroc - 0.5) <= band:
        return f"its AUROC ({auroc:.2f}) is within {band:.2f} of 0.5, what guessing gives"
    return None
