"""bincls: binary image classification from two folders of images.

The Python API, in a few lines:

    from bincls import TrainConfig, train, evaluate, Predictor
    result = train(TrainConfig(data=["photos/cats", "photos/dogs"], model="small-cnn", epochs=10))
    print(evaluate(result.run.path).metrics["accuracy"])
    print(Predictor(result.run.best_checkpoint).predict("new.jpg"))
"""

from __future__ import annotations

import importlib

from bincls.errors import BinclsError

__version__ = "0.1.0"

# Loaded on first use, so `import bincls` (and the CLI's scan) does not pay for torch up front.
_LAZY = {
    "load_data": "bincls.data.dataset",
    "scan_folders": "bincls.data.dataset",
    "SplitConfig": "bincls.data.split",
    "TrainConfig": "bincls.training.loop",
    "train": "bincls.training.loop",
    "evaluate": "bincls.inference.evaluate",
    "Predictor": "bincls.inference.predict",
    "load_model": "bincls.models.checkpoint",
    "list_models": "bincls.models",
    "RunFolder": "bincls.runs.folder",
}

__all__ = ["BinclsError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bincls' has no attribute {name!r}")
