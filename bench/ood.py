"""Out-of-distribution detectors compared on real images: which flags "neither class" best.

A model of one shared dataset should call the other one unlike its training images: insects for a
model of faces (face_mask_dirty), faces for a model of insects (hymenoptera). Every detector looks at
the same pooled ImageNet mobilenet_v2 features (what the fast preset trains on), is fitted on 70% of the
in-distribution images, gets its threshold on 15% (at the false-flag rate bincls uses) and is scored on
the other 15% and on the other dataset:
  bincls    bincls.inference.ood.fit_detector, what bincls uses (the maha below, as a torch module)
  knn10     cosine distance to the 10th nearest training image (Sun et al. 2022)
  knn1      the nearest one
  maha      class-conditional Mahalanobis distance, shared Ledoit-Wolf covariance, full 1280 dimensions
  maha128   the same after PCA to 128 dimensions (a smaller covariance to carry in a checkpoint)
Needs ../shared (the datasets and the weights); repeats over 5 random splits and prints the mean.

    .venv/bin/python bench/ood.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def _features(root: Path) -> tuple[np.ndarray, np.ndarray]:
    from bincls.audit.features import image_features
    from bincls.data.dataset import scan_folders

    scan = scan_folders([str(root)])
    usable = sorted(scan.usable, key=lambda r: r.path)
    feats = image_features([r.path for r in usable], "mobilenet_v2", "imagenet")
    return feats, np.array([r.label for r in usable])


def _norm(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def knn(k: int):
    def score(train, _labels, q):
        sims = _norm(q) @ _norm(train).T
        return 1 - np.sort(sims, axis=1)[:, -k]

    return score


def mahalanobis(dims: int | None):
    from sklearn.covariance import LedoitWolf
    from sklearn.decomposition import PCA

    def score(train, labels, q):
        x, qq = _norm(train), _norm(q)
        if dims:
            pca = PCA(dims, random_state=0).fit(x)
            x, qq = pca.transform(x), pca.transform(qq)
        means = [x[labels == c].mean(0) for c in (0, 1)]
        prec = LedoitWolf().fit(np.concatenate([x[labels == c] - means[c] for c in (0, 1)])).precision_
        return np.min([np.einsum("ij,jk,ik->i", qq - m, prec, qq - m) for m in means], axis=0)

    return score


def bincls_detector(train, labels, q):
    import torch

    from bincls.inference.ood import fit_detector

    det = fit_detector(torch.from_numpy(train), torch.from_numpy(labels), torch.from_numpy(train[:2]))
    with torch.no_grad():
        return det(torch.from_numpy(q)).numpy()


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from bincls.inference.ood import FALSE_FLAG_RATE

    weights = SHARED / "weights" / "mobilenet_v2_imagenet.pth"
    if not weights.exists():
        sys.exit("../shared is absent: this benchmark needs its datasets and weights")
    home = Path(tempfile.mkdtemp(prefix="bincls-ood-"))
    try:
        checkpoints = home / "torch" / "hub" / "checkpoints"
        checkpoints.mkdir(parents=True)
        shutil.copy(weights, checkpoints / "mobilenet_v2-7ebf99e0.pth")
        os.environ.update(TORCH_HOME=str(home / "torch"), BINCLS_CACHE_DIR=str(home / "cache"))
        feats = {"faces": _features(SHARED / "data" / "face_mask_dirty"),
                 "insects": _features(SHARED / "data" / "hymenoptera")}  # fmt: skip
        detectors = {"bincls": bincls_detector, "knn10": knn(10), "knn1": knn(1), "maha": mahalanobis(None),
                     "maha128": mahalanobis(128)}  # fmt: skip
        print(f"threshold at a {FALSE_FLAG_RATE:.0%} false-flag rate on held-out in-distribution images\n")
        print("| model of | unlike it | detector | AUROC | flags the other dataset | flags its own test "
              "images |")
        print("|---|---|---|---:|---:|---:|")
        for ind, ood in (("faces", "insects"), ("insects", "faces")):
            x, y = feats[ind]
            other = feats[ood][0]
            for name, detector in detectors.items():
                rows = []
                for seed in range(5):
                    idx = np.random.default_rng(seed).permutation(len(x))
                    tr, va, te = np.split(idx, [int(0.7 * len(x)), int(0.85 * len(x))])
                    sv, st, so = (detector(x[tr], y[tr], q) for q in (x[va], x[te], other))
                    thr = np.quantile(sv, 1 - FALSE_FLAG_RATE)
                    auc = roc_auc_score(np.r_[np.zeros(len(st)), np.ones(len(so))], np.r_[st, so])
                    rows.append((auc, np.mean(so > thr), np.mean(st > thr)))
                auc, flagged, false = np.mean(rows, axis=0)
                print(f"| {ind} | {ood} | {name} | {auc:.3f} | {flagged:.1%} | {false:.1%} |")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
