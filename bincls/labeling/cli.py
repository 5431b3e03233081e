"""`bincls label`: the labelling session on the command line (the contract scripts and checks use).

    bincls label PILE [PILE...] --classes A B [--answers FILE.csv] --next K --json
    bincls label PILE --classes A B [--answers FILE.csv] --export OUT.csv [--accept-confident [P]]
    bincls label PILE --classes A B [--answers FILE.csv] --status --json
    bincls label PILE --classes A B --features      # compute the features only (shared out under torchrun)
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_label_parser(sub) -> None:
    p = sub.add_parser("label", help="label a pile: the images to answer next, the status, a labelled CSV")
    p.add_argument("piles", nargs="+", metavar="PILE", help="folder(s) of images, searched recursively")
    p.add_argument("--classes", nargs=2, required=True, metavar=("A", "B"), help="the two class names")
    p.add_argument("--answers", metavar="FILE.csv",
                   help="answers so far (path,label; label A, B, skip or neither), imported into the session "
                        "first: they replace what the previous --answers file brought in")  # fmt: skip
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--next", type=int, metavar="K", help="the next K images to answer, with the guesses")
    mode.add_argument("--export", metavar="OUT.csv", help="write path,label for every answer")
    mode.add_argument("--status", action="store_true", help="counts, accuracy estimate, confident guesses")
    mode.add_argument("--features", action="store_true", help="compute the pile's features and stop")
    p.add_argument("--accept-confident", nargs="?", const=True, default=False, type=_probability, metavar="P",
                   help="with --export: also every unanswered image guessed at least P sure (default: the "
                        "session's cut, 0.9)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_label)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.5 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability from 0.5 to 1, got {text}")
    return value


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        print(f"\rreading the pile {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    return show


def cmd_label(args: argparse.Namespace) -> int:
    from bincls.errors import BinclsError
    from bincls.labeling.session import LabelingSession

    if args.accept_confident is not False and not args.export:
        raise BinclsError("--accept-confident goes with --export.")
    session = LabelingSession.open(args.piles, tuple(args.classes), progress=_progress(args.json))
    rank = os.environ.get("RANK", "0").strip() or "0"
    if args.features:  # every process of a torchrun launch says what it did, in one write to the shared pipe
        print(f"process {rank}: computed {session.computed} of {len(session.pile.paths)} images' features "
              f"({session.extractor.note})", flush=True)  # fmt: skip
        return 0
    if rank != "0":
        return 0  # under torchrun the other processes only shared the feature pass
    if args.answers:
        _report_import(session.import_answers(args.answers))
    if not session.extractor.pretrained:
        print(f"note: {session.extractor.note}", file=sys.stderr)
    if args.next is not None:
        return _print_next(session, args.next, args.json)
    if args.export:
        path = session.export(args.export, accept=args.accept_confident)
        rows = session.labels(args.accept_confident)
        done = {"path": str(path), "labels": len(rows)}
        print(json.dumps(done) if args.json else f"{len(rows)} labels -> {path}")
        return 0
    status = session.status().to_dict()
    print(json.dumps(status, indent=1, ensure_ascii=False) if args.json else _format_status(status))
    return 0


def _report_import(imported) -> None:
    if imported.not_in_pile:
        print(f"note: {len(imported.not_in_pile)} answer(s) name images that are not in the pile "
              f"(e.g. {imported.not_in_pile[0]}): ignored", file=sys.stderr)  # fmt: skip
    for where, why in imported.bad_rows[:5]:
        print(f"note: {where}: {why}", file=sys.stderr)


def _print_next(session, k: int, as_json: bool) -> int:
    suggestions = session.suggest(k)
    if as_json:
        print(json.dumps([s.to_dict() for s in suggestions], ensure_ascii=False))
        return 0
    for s in suggestions:
        print(f"{s.guess}\t{s.p:.3f}\t{s.why}\t{s.path}")
    return 0


def _format_status(st: dict) -> str:
    a, b = st["classes"]
    ans = st["answered"]
    lines = [f"{st['images']} images: answered {a} {ans[a]}, {b} {ans[b]}, skip {ans['skip']}, neither "
             f"{ans['neither']}; accepted guesses {st['accepted'][a] + st['accepted'][b]}; "
             f"{st['unlabelled']} unlabelled"]  # fmt: skip
    est = st["estimate"]
    if est:
        lo, hi = est["interval"]
        lines.append(f"accuracy on the answers (out of sample): {est['accuracy']:.1%} "
                     f"(95% interval {lo:.1%}-{hi:.1%}, {est['right']}/{est['answered']})")  # fmt: skip
    conf = st["confident"]
    lines.append(f"confident guesses (p >= {conf['cut']:g}) among the unlabelled: {conf['images']} "
                 f"({a} {conf['per_class'][a]}, {b} {conf['per_class'][b]})")  # fmt: skip
    lines += [f"note: {n}" for n in st["notes"]]
    lines.append(f"answers kept in {st['store']}")
    return "\n".join(lines)
