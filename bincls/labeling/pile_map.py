"""The whole pile on a plane, for the Label page's map: where each image falls and what is known of it.

The two coordinates are the session's first two principal axes (bincls.labeling.embedding): already
computed, exact for every image, and the same each time. UMAP (umap-learn) draws tighter clusters but
costs 10-30 s of compilation and fitting on two cores for a few thousand images, each time the pile
changes; a map that opens at once wins for a page a person returns to after every batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# What a point shows, in the order the legend lists them.
STATES = ("answered", "accepted guess", "guess", "not guessed yet", "skip / neither")


def pile_map(session) -> pd.DataFrame:
    """One row per readable image: path, x, y, state (one of STATES), label (the answer, the accepted or
    the current guess; "" when there is none) and p (the guess's probability; NaN without a model)."""
    entries = session.entries()
    p1 = session.guess_probabilities()
    keys = session.pile.keys  # computed per call: once here
    usable = np.setdiff1d(np.arange(len(session.pile.paths)), session.unreadable)
    rows = []
    for i in usable:
        path = session.pile.paths[i]
        entry = entries.get(keys[i]) or {}
        p = float(p1[i])
        guess = "" if np.isnan(p) else session.classes[int(p >= 0.5)]
        sure = np.nan if np.isnan(p) else max(p, 1 - p)
        label = entry.get("label")
        if entry.get("how") == "answer" and label in session.classes:
            state = "answered"
        elif entry.get("how") == "accepted" and label in session.classes:
            state = "accepted guess"
        elif label is not None:
            state = "skip / neither"
        else:
            state, label = ("guess", guess) if guess else ("not guessed yet", "")
        rows.append((path, float(session.x[i, 0]), float(session.x[i, 1]), state, label or "", sure))
    return pd.DataFrame(rows, columns=["path", "x", "y", "state", "label", "p"])
