"""The features a session sees the pile with: a pretrained backbone's when its weights are at hand, else
small pixel features (and the session says so). Computed once per file and cached (bincls.audit.
feature_cache); under `torchrun` the files still to compute are shared out among the processes.

Which extractor to use is remembered in the cache folder with the weights file it found (or the files
it looked for), so that a round whose features are all cached never imports torch: importing it costs
2-4 s, and a `bincls label --next` call has 5 s in all.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from bincls.audit.feature_cache import Progress, cached_features, compute_into_cache, features_for
from bincls.json_files import read_json, write_json_atomic
from bincls.labeling.pixel_features import EXTRACTOR as PIXELS
from bincls.labeling.pixel_features import pixel_compute
from bincls.labeling.shared_work import share
from bincls.paths import cache_dir


@dataclass(frozen=True)
class Extractor:
    name: str  # what the features are cached under
    model: str | None  # a backbone, or None for pixel features
    weights: str | None
    note: str

    @property
    def pretrained(self) -> bool:
        return self.model is not None


def _hub_dir() -> str:
    """torch.hub.get_dir() as torch computes it, without importing torch."""
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return os.path.join(os.path.expanduser(home), "hub")


def _record_path():
    return cache_dir() / "labeling" / f"extractor-{hashlib.sha256(_hub_dir().encode()).hexdigest()[:16]}.json"


def _still_valid(rec: dict) -> bool:
    if rec.get("model"):
        found = rec.get("weights_file")
        return bool(found) and os.path.isfile(found) and os.path.getsize(found) == rec.get("weights_size")
    return not any(os.path.exists(p) for p in rec.get("looked_for", []))


def _from_record(rec: dict) -> Extractor:
    return Extractor(rec["name"], rec.get("model"), rec.get("weights"), rec["note"])


def choose_extractor() -> Extractor:
    """The first backbone of `bincls.models.weights.BACKBONES` whose ImageNet weights are cached (or can be
    downloaded), else pixel features. Remembered: the next call decides without torch."""
    if _recorded():
        return _from_record(read_json(_record_path()))
    import torchvision

    from bincls.audit.features import backbone_extractor
    from bincls.models.weights import BACKBONES, cached_imagenet_file, weights_at_hand

    looked_for = [os.path.join(_hub_dir(), "checkpoints", os.path.basename(w.url))
                  for name in BACKBONES for w in torchvision.models.get_model_weights(name)]  # fmt: skip
    rec = {"name": PIXELS, "model": None, "weights": None, "looked_for": looked_for,
           "note": "no pretrained weights here (none in the torch hub cache, no network): the session "
                   "looks at colours and coarse shapes only, so its suggestions and guesses are weak and its "
                   "confident guesses often wrong (export the answers alone). Put torchvision's ImageNet "
                   "weights in the torch hub cache for much better ones."}  # fmt: skip
    for name in BACKBONES:
        how = weights_at_hand(name)
        if how is not None:
            found = cached_imagenet_file(name)
            rec = {"name": backbone_extractor(name, "imagenet"), "model": name, "weights": "imagenet",
                   "weights_file": str(found) if found else None,
                   "weights_size": os.path.getsize(found) if found else None,
                   "note": f"features of {name} (ImageNet weights; {how})"}  # fmt: skip
            break
    if rec["name"] == PIXELS or rec.get("weights_file"):  # a download-to-be is decided again next time
        try:
            _record_path().parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(_record_path(), rec)
        except OSError:
            pass  # decided again next time
    return _from_record(rec)


def _compute(extractor: Extractor):
    if not extractor.pretrained:
        return pixel_compute
    from bincls.audit.features import backbone_compute

    return backbone_compute(extractor.model, extractor.weights)


@dataclass
class PileFeatures:
    matrix: np.ndarray  # [N, D] float32, NaN rows for unreadable files
    extractor: Extractor
    unreadable: list[int]  # indices of files that could not be read now
    computed: int = 0  # files this process computed (the rest came from the cache or other processes)


def pile_features(paths: list[str], extractor: Extractor | None = None,
                  progress: Progress | None = None) -> PileFeatures:  # fmt: skip
    """The features of `paths`, cached ones read, the rest computed (and cached).

    Under torchrun (WORLD_SIZE > 1) every process computes its share of the files not cached yet (every
    size-th, from its rank), then all wait for each other and read the whole from the cache.
    """
    extractor = extractor or choose_extractor()
    matrix, missing = cached_features(paths, extractor.name)
    if matrix is not None:
        return PileFeatures(matrix, extractor, [])
    compute = _compute(extractor)
    computed = _shared_pass([paths[i] for i in missing], extractor, compute, progress)
    if computed is None:  # one process: all of them here
        computed = len(missing)
    matrix, failed = features_for(paths, extractor.name, compute, progress)
    if extractor.pretrained and not _recorded():
        choose_extractor()  # weights downloaded just now are in the hub cache: remembered for the next call
    return PileFeatures(matrix, extractor, failed, computed)


def _recorded() -> bool:
    rec = read_json(_record_path())
    return isinstance(rec, dict) and {"name", "note"} <= set(rec) and _still_valid(rec)


def _shared_pass(paths: list[str], extractor: Extractor, compute, progress: Progress | None) -> int | None:
    """Under torchrun: this process's share of `paths` into the cache, then a barrier; the share's size.
    None when there is one process."""
    return share(paths, lambda mine: compute_into_cache(mine, extractor.name, compute, progress))
