"""A labelling session on a pile of unlabelled images (issue 22): the images to answer next, the model's
guesses, the status, and a labelled CSV to train on. The answers live in bincls' cache folder; the
user's files are never touched.

    from bincls.labeling import LabelingSession
    session = LabelingSession.open(["photos/pile"], ("cat", "dog"))
    session.suggest(10)
    session.answer(path, "cat")
    session.status()
    session.export("labels.csv", accept=True)

The command line: `bincls label PILE --classes A B --next 10 --json` (bincls.labeling.cli).
"""

from __future__ import annotations

import importlib

_LAZY = {"LabelingSession": "bincls.labeling.session", "Suggestion": "bincls.labeling.session",
         "find_pile": "bincls.labeling.pile"}  # fmt: skip

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bincls.labeling' has no attribute {name!r}")
