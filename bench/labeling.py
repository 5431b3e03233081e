"""An oracle plays the person labelling a pile: how good is a model after 10, 20, 40 and 80 answers when the
session picks what to ask (bincls.labeling.strategy) against random picking, in the same run?

Piles (../shared/data): hymenoptera (ants, bees) and face_mask_dirty (with_mask, without_mask), and a
rare-class version of each: the pile keeps all of one class (ants; with_mask) and 5% of the other.
Every seed splits the images (byte-identical copies once) into a pile (70%) and a held-out test part
(30%, both classes as they are); the test part is never suggested, answered or projected with the pile.
The oracle answers every suggestion with the image's folder name. After 10, 20, 40, 80 answers: test
accuracy and balanced accuracy of the session's guesses (bincls.labeling.estimate, on the test part),
rare images found among the answers, the session's own accuracy estimate beside the real accuracy of its
guesses on the unanswered pile, and (at 40 answers) what accepting the confident guesses gives:
how many, how many wrong, and the test balanced accuracy of a model fitted on answers + accepted.

    .venv/bin/python bench/labeling.py [--seeds 10] [--features backbone|pixels] [--explore]

bench/labeling_protocol.py runs the issue's protocol end to end through the command line.
Needs the ImageNet mobilenet_v2 weights (../shared/weights) for --features backbone: put in a temporary
TORCH_HOME when none is set up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# ../shared beside the project; a git worktree one folder deeper finds it one level up
SHARED = next(
    (p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()), ROOT.parent / "shared"
)
PILES = {"hymenoptera": ("ants", "bees"), "face_mask_dirty": ("with_mask", "without_mask")}
STEPS = (10, 20, 40, 80)
EXTRA: list = []  # --explore: variants of the session's strategy
RARE_SHARE = 0.05
CUTS = (0.8, 0.9, 0.95, 0.99)  # 0.0 in the tables: answers only


def hub_with_weights() -> None:
    """A temporary torch hub cache with the shared ImageNet mobilenet_v2 weights, unless one is set."""
    if os.environ.get("TORCH_HOME"):
        return
    weights = SHARED / "weights" / "mobilenet_v2_imagenet.pth"
    home = Path(tempfile.mkdtemp(prefix="bincls-bench-torch-"))
    (home / "hub" / "checkpoints").mkdir(parents=True)
    for name in ("mobilenet_v2-b0353104.pth", "mobilenet_v2-7ebf99e0.pth"):
        shutil.copy(weights, home / "hub" / "checkpoints" / name)
    os.environ["TORCH_HOME"] = str(home)


def load(name: str, kind: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(paths, features, labels 0/1) of a shared pile, checked and deduplicated as a session does."""
    from bincls.labeling.features import Extractor, choose_extractor, pile_features
    from bincls.labeling.pile import find_pile
    from bincls.labeling.pixel_features import EXTRACTOR

    pile = find_pile([SHARED / "data" / name])
    extractor = choose_extractor() if kind == "backbone" else Extractor(EXTRACTOR, None, None, "pixels")
    if kind == "backbone" and not extractor.pretrained:
        sys.exit("no pretrained weights found: set TORCH_HOME to a hub cache holding mobilenet_v2's")
    got = pile_features(pile.paths, extractor)
    feats, failed = got.matrix, got.unreadable
    keep = [i for i in range(len(pile.paths)) if i not in set(failed)]
    paths = [pile.paths[i] for i in keep]
    second = PILES[name][1]
    labels = np.array([int(Path(p).parent.name == second) for p in paths])
    return paths, feats[keep], labels


def split(labels: np.ndarray, seed: int, rare: bool) -> tuple[np.ndarray, np.ndarray]:
    """(pile, test) indices: 70/30 stratified; a rare pile keeps class 0 whole and 5% of class 1."""
    rng = np.random.default_rng(seed)
    pile, test = [], []
    for c in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cut = int(round(0.3 * len(idx)))
        test += idx[:cut].tolist()
        pile += idx[cut:].tolist()
    pile = np.array(sorted(pile))
    if rare:
        ones = pile[labels[pile] == 1]
        n_rare = max(3, int(round(RARE_SHARE * (labels[pile] == 0).sum())))
        pile = np.sort(np.concatenate([pile[labels[pile] == 0], rng.permutation(ones)[:n_rare]]))
    return pile, np.array(sorted(test))


def balanced_accuracy(p1: np.ndarray, truth: np.ndarray) -> float:
    guess = p1 >= 0.5
    return float(np.mean([(guess[truth == c] == c).mean() for c in (0, 1)]))


def oracle_run(x: np.ndarray, xt: np.ndarray, y: np.ndarray, yt: np.ndarray, strategy) -> dict:
    """Answer the session's suggestions 10 at a time; the metrics at each of STEPS answers."""
    from bincls.labeling.estimate import accuracy_estimate, guesses
    from bincls.labeling.strategy import choose

    answered: list[int] = []
    out = {}
    rare = int(np.argmin(np.bincount(y, minlength=2)))
    while len(answered) < max(STEPS):
        a = np.array(answered, int)
        answered += [p.index for p in choose(x, a, y[a], a, 10, strategy)]
        if len(answered) not in STEPS:
            continue
        a = np.array(answered, int)
        g = guesses(x, a, y[a])
        rest = np.setdiff1d(np.arange(len(y)), a)
        est = accuracy_estimate(g, y[a], rest)
        # the test part is not the pile: the model's own boundary (classes weighing the same), as training has
        guess = (g.model.logits(xt) > 0) if g.model else np.zeros(len(yt), bool)
        row = {"found": int((y[a] == rare).sum()), "acc": float((guess == yt).mean()),
               "bacc": float(np.mean([(guess[yt == c] == c).mean() for c in (0, 1)])),
               "estimate": est.accuracy if est else np.nan,
               "low": est.interval[0] if est else np.nan, "high": est.interval[1] if est else np.nan,
               "rest_est": est.rest if est else np.nan, "rest_low": est.rest_interval[0] if est else np.nan,
               "rest_high": est.rest_interval[1] if est else np.nan,
               "rest": float(((g.p1[rest] >= 0.5) == y[rest]).mean()) if g.model else np.nan}  # fmt: skip
        if len(answered) == 40 and g.model is not None:
            row["accept"] = {shift: accepting(x, xt, y, yt, a, guesses(x, a, y[a], prior_shift=shift))
                             for shift in (True, False)}  # fmt: skip
        out[len(answered)] = row
    return out


def accepting(x, xt, y, yt, a, g) -> dict:
    """At each cut: accepted guesses, wrong ones, and the test balanced accuracy of answers + accepted."""
    from bincls.labeling.model import fit

    rest = np.setdiff1d(np.arange(len(y)), a)
    rare = int(np.argmin(np.bincount(y, minlength=2)))
    out = {}
    for cut in (0.0, *CUTS):
        take = rest[g.confident(cut)[rest]] if cut else np.array([], int)
        guessed = (g.p1[take] >= 0.5).astype(int)
        rows, labels = np.concatenate([a, take]), np.concatenate([y[a], guessed])
        final = fit(x[rows], labels).logits(xt) > 0
        wrong = guessed != y[take]
        out[cut] = {
            "accepted": len(take),
            "wrong": int(wrong.sum()),
            "rare_wrong": int((wrong & (y[take] == rare)).sum()),
            "bacc": float(np.mean([(final[yt == c] == c).mean() for c in (0, 1)])),
        }
    return out


def mean(rows: list[dict], step: int, key: str) -> float:
    return float(np.nanmean([r[step][key] for r in rows]))


def strategy_table(data: dict, seeds: int) -> None:
    from bincls.labeling.embedding import fit_projection
    from bincls.labeling.strategy import RANDOM, SESSION, UNCERTAIN

    strategies = (RANDOM, UNCERTAIN, SESSION, *EXTRA)
    print(
        "| pile | picking | " + " | ".join(f"{n} answers: acc / bal. acc / rare found" for n in STEPS) + " |"
    )
    print("|---|---|" + "---|" * len(STEPS))
    estimates, accepts = [], []
    for name, rare in [(n, r) for r in (False, True) for n in PILES]:
        _, feats, labels = data[name]
        runs = {s.name: [] for s in strategies}
        sizes = []
        for seed in range(seeds):
            pile, test = split(labels, seed, rare)
            projection = fit_projection(feats[pile])
            x, xt = projection.apply(feats[pile]), projection.apply(feats[test])
            sizes.append((len(pile), int(labels[pile].sum())))
            for s in strategies:
                runs[s.name].append(oracle_run(x, xt, labels[pile], labels[test], s))
        title = f"{name}{' rare' if rare else ''} ({sizes[0][0]}, {sizes[0][1]} of class 2)"
        for s in strategies:
            cells = [f"{mean(runs[s.name], n, 'acc'):.3f} / {mean(runs[s.name], n, 'bacc'):.3f} / "
                     f"{mean(runs[s.name], n, 'found'):.1f}" for n in STEPS]  # fmt: skip
            print(f"| {title} | {s.name} | " + " | ".join(cells) + " |")
        estimates.append((title, runs["session"]))
        accepts.append((title, [r[40]["accept"] for r in runs["session"] if "accept" in r[40]]))
    print_estimates(estimates)
    print_accepts(accepts)


def print_estimates(estimates) -> None:
    print(
        "\nThe session's accuracy estimates against the real accuracy of its guesses on the unanswered pile "
        "(session picking, mean over seeds). Of the 95% intervals: how often they held the real value, and "
        "how often they claimed more than it (over: the real value below the interval):"
    )
    print(
        "| pile | answers | on the answers [interval] | on the rest [interval] | real, rest | held | over |"
    )
    print("|---|---|---|---|---|---|---|")
    for title, rows in estimates:
        for n in (20, 40, 80):
            have = [r[n] for r in rows if not np.isnan(r[n]["low"])]
            if not have:
                continue
            held = [np.mean([r[lo] <= r["rest"] <= r[hi] for r in have]) for lo, hi in BOUNDS]
            more = [np.mean([r["rest"] < r[lo] for r in have]) for lo, _ in BOUNDS]
            keys = ("estimate", "low", "high", "rest_est", "rest_low", "rest_high")
            m = {key: mean(rows, n, key) for key in keys}
            answers = f"{m['estimate']:.3f} [{m['low']:.2f}-{m['high']:.2f}]"
            rest = f"{m['rest_est']:.3f} [{m['rest_low']:.2f}-{m['rest_high']:.2f}]"
            real = f"{mean(rows, n, 'rest'):.3f}"
            print(
                f"| {title} | {n} | {answers} | {rest} | {real} | {held[0]:.0%}, {held[1]:.0%} | "
                f"{more[0]:.0%}, {more[1]:.0%} |"
            )


BOUNDS = (("low", "high"), ("rest_low", "rest_high"))  # the interval on the answers, on the rest


def print_accepts(accepts) -> None:
    print("\nAccepting the confident guesses after 40 answers (session picking), mean over seeds: guesses "
          "accepted, wrong among them (of which rare images called common), test balanced accuracy of a "
          "model fitted on answers + accepted; cut 0 = answers only:")  # fmt: skip
    cuts = (0.0, *CUTS)
    print("| pile | probabilities | " + " | ".join(f"cut {c:g}" for c in cuts) + " |")
    print("|---|---|" + "---|" * len(cuts))
    for title, rows in accepts:
        for shift in (True, False):
            part = [r[shift] for r in rows]
            cells = []
            keys = ("accepted", "wrong", "rare_wrong", "bacc")
            for c in cuts:
                a = {key: np.mean([r[c][key] for r in part]) for key in keys}
                counts = f"{a['accepted']:.0f}, {a['wrong']:.1f} ({a['rare_wrong']:.1f})"
                cells.append(f"{counts}, {a['bacc']:.3f}")
            how = "with the pile's balance" if shift else "classes alike"
            print(f"| {title} | {how} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--features", choices=["backbone", "pixels"], default="backbone")
    ap.add_argument("--explore", action="store_true", help="also variants of the session's strategy")
    args = ap.parse_args()
    if args.explore:
        from bincls.labeling.strategy import Strategy

        EXTRA.extend(
            [
                Strategy("rare half", rare_part=0.5),
                Strategy("rare gate 0.3", rare_share=0.3),
                Strategy("no typical", diverse_part=0.0),
                Strategy("two typical", diverse_part=0.2),
                Strategy("rare 7 in 10, spread", rare_part=0.7, rare_shortlist=4),  # the earlier default
                Strategy("rare 9 in 10", rare_part=0.9),
            ]
        )
    if args.features == "backbone":
        hub_with_weights()
    t0, cpu0 = time.perf_counter(), time.process_time()
    data = {name: load(name, args.features) for name in PILES}
    print(f"features ({args.features}) in {time.perf_counter() - t0:.1f} s; load {os.getloadavg()[0]:.1f}\n")
    strategy_table(data, args.seeds)
    print(f"\nstrategy table: {time.perf_counter() - t0:.0f} s wall, {time.process_time() - cpu0:.0f} CPU s")


if __name__ == "__main__":
    main()
