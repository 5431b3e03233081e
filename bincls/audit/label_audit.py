"""Find the images a person should look at: likely wrong labels, outliers and near-duplicates.

Out-of-sample probabilities for every image come from a k-fold logistic regression on pretrained
backbone features (seconds, not a k-fold of network trainings). cleanlab's confident learning ranks
the likely label errors and its out-of-distribution scores find outliers; near-duplicates are pairs of
images whose features are almost the same (cleanlab's own near-duplicate check lives in Datalab, which
needs Hugging Face `datasets`: a nearest-neighbour search on the same features does it here).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.outlier import OutOfDistribution
from cleanlab.rank import get_label_quality_scores
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import NearestNeighbors

from bincls.audit.features import image_features
from bincls.data.dataset import scan_folders
from bincls.errors import BinclsError

FOLDS = 5
REPEATS = 3  # k-fold repeated with other shuffles and averaged: a steadier ranking for little time
C = 1.0  # inverse L2 strength of the logistic regression on L2-normalised backbone features
OUTLIER_SHARE = 0.02  # at most this share of the images is listed as outliers, least typical first
NEAR_DUPLICATE_SIMILARITY = 0.97  # cosine similarity of features above which two images look the same
Progress = Callable[[str, int, int], None]


@dataclass
class AuditRow:
    path: str
    given: str
    suggested: str
    score: float  # 0..1: how strongly the audit thinks this row needs a look
    kind: str  # "label", "outlier" or "near-duplicate"
    detail: str = ""  # e.g. the image a near-duplicate resembles

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AuditResult:
    rows: list[AuditRow]
    class_names: list[str]
    images: int
    model: str
    seconds: float
    out_of_sample_accuracy: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "rows": [r.to_dict() for r in self.rows],
            "classes": self.class_names,
            "images": self.images,
            "model": self.model,
            "seconds": self.seconds,
            "out_of_sample_accuracy": self.out_of_sample_accuracy,
            "notes": self.notes,
        }


def out_of_sample_probabilities(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """[N, 2] probabilities, each from a model that did not see that image (stratified k-fold)."""
    counts = np.bincount(labels, minlength=2)
    folds = int(min(FOLDS, counts.min()))
    if folds < 2:
        raise BinclsError(
            f"The audit needs at least 2 images of each class; found {counts[0]} and {counts[1]}."
        )
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    probs = np.zeros((len(labels), 2))
    for repeat in range(REPEATS):
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed + repeat).split(x, labels):
            clf = LogisticRegression(C=C, max_iter=2000, class_weight="balanced")
            clf.fit(x[train], labels[train])
            probs[test] += clf.predict_proba(x[test]) / REPEATS
    return probs


def _label_rows(paths, labels, probs, names) -> list[AuditRow]:
    quality = get_label_quality_scores(labels, probs)
    # n_jobs=1: cleanlab otherwise forks a multiprocessing pool, and a fork of the app server (torch's and
    # Streamlit's threads running) could hang on a lock held at the fork; one process is also faster here
    flagged = set(find_label_issues(labels, probs, n_jobs=1).nonzero()[0].tolist())
    disagree = set(np.flatnonzero(probs.argmax(1) != labels).tolist())
    rows = [
        AuditRow(paths[i], names[labels[i]], names[1 - labels[i]], float(1 - quality[i]), "label",
                 "confident learning flags it" if i in flagged else "the model disagrees")
        for i in sorted(flagged | disagree, key=lambda i: quality[i])
    ]  # fmt: skip
    return rows


def _outlier_rows(paths, labels, features, names, taken: set[str]) -> list[AuditRow]:
    if len(paths) < 12:  # cleanlab's kNN needs neighbours to compare with
        return []
    scores = OutOfDistribution().fit_score(features=features, verbose=False)
    n = max(1, int(round(OUTLIER_SHARE * len(paths))))
    order = np.argsort(scores)[:n]
    return [
        AuditRow(paths[i], names[labels[i]], names[labels[i]], float(1 - scores[i]), "outlier",
                 "unlike the other images")
        for i in order if paths[i] not in taken
    ]  # fmt: skip


def _near_duplicate_rows(paths, labels, features, names) -> list[AuditRow]:
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    nn = NearestNeighbors(n_neighbors=2, metric="cosine").fit(x)
    dist, idx = nn.kneighbors(x)
    rows, seen = [], set()
    for i in np.argsort(dist[:, 1]):
        sim, j = 1 - dist[i, 1], int(idx[i, 1])
        if sim < NEAR_DUPLICATE_SIMILARITY:
            break
        pair = (min(i, j), max(i, j))
        if pair in seen:
            continue
        seen.add(pair)
        other = "the other class" if labels[i] != labels[j] else "the same class"
        rows.append(AuditRow(paths[pair[1]], names[labels[pair[1]]], names[labels[pair[1]]], float(sim),
                             "near-duplicate", f"looks like {os.path.basename(paths[pair[0]])} "
                             f"({other}): {paths[pair[0]]}"))  # fmt: skip
    return rows


def audit(paths: list[str | os.PathLike], class_names: list[str] | None = None,
          progress: Progress | None = None, model: str | None = None, weights: str | None = None
          ) -> AuditResult:  # fmt: skip
    """Rank the usable images of a dataset by how much they need a person's look. Reads only."""
    t0 = time.perf_counter()
    scan = scan_folders(list(paths), class_names, None if progress is None else
                        (lambda d, t: progress("checking the files", d, t)))  # fmt: skip
    usable = sorted(scan.usable, key=lambda r: r.path)
    names = scan.class_names
    files = [r.path for r in usable]
    labels = np.array([r.label for r in usable], dtype=int)
    if len(files) < 4:
        raise BinclsError(f"The audit needs at least a few usable images; {len(files)} found.")
    if model is None:
        from bincls.audit.features import feature_backbone

        model, weights = feature_backbone()
    feats = image_features(files, model, weights, None if progress is None else
                           (lambda d, t: progress("computing features", d, t)))  # fmt: skip
    probs = out_of_sample_probabilities(feats, labels)
    rows = _label_rows(files, labels, probs, names)
    rows += _outlier_rows(files, labels, feats, names, {r.path for r in rows})
    rows += _near_duplicate_rows(files, labels, feats, names)
    accuracy = float((probs.argmax(1) == labels).mean())
    notes = [f"Out-of-sample accuracy of the audit's own classifier: {accuracy:.1%} on {len(files)} images."]
    return AuditResult(rows, names, len(files), model, time.perf_counter() - t0, accuracy, notes)
