"""The command line over the same functions the app uses."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from bincls.cli_scan_text import format_scan
from bincls.data.split import SplitConfig
from bincls.errors import BinclsError
from bincls.labeling.cli import add_label_parser  # argparse only: the session loads when a command runs


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="two class folders, or one root / pre-split root")
    p.add_argument("--names", help="rename the two classes: NAME0,NAME1")
    p.add_argument("--split", default="0.7,0.2,0.1", help="train,val,test shares (default 0.7,0.2,0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed for the split (and training)")


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",")] if text else None


def cmd_scan(args: argparse.Namespace) -> int:
    from bincls.data.dataset import split_data
    from bincls.data.folder_layout import resolve_layout
    from bincls.data.overlay import load_decisions
    from bincls.data.scan import scan_layout

    if len(args.paths) > 2:
        raise BinclsError(f"scan takes one or two paths; got {len(args.paths)}.")
    layout = resolve_layout(args.paths, _names(args.names))
    scan = scan_layout(layout, progress=_progress_printer(args.json))
    decisions = {} if args.ignore_audit else load_decisions(args.paths)
    # The split train makes of the same data, seed and shares (the audit's decisions applied, as train does)
    data = split_data(scan, SplitConfig.parse(args.split, args.seed), decisions)
    counts = data.counts()
    if args.json:
        out = scan.to_dict()
        out["split"] = counts
        print(json.dumps(out, indent=1, ensure_ascii=False))
        return 0
    print(format_scan(scan, counts))
    return 0


def _progress_printer(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        print(f"\rchecking files {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    return show


def cmd_train(args: argparse.Namespace) -> int:
    from bincls.runs.folder import RunFolder
    from bincls.training.config import TrainConfig, from_arguments
    from bincls.training.launcher import check_resumable, claim_new_run, claim_resume

    console = _console(args.summary)
    # Under torchrun only rank 0 keeps the run folder (RANK as torchrun sets it; read without loading torch).
    main_process = os.environ.get("RANK", "0").strip() in ("", "0")
    if args.run_dir or args.resume:
        # A run folder prepared by the app's launcher, or one to continue: its config.json says what to train.
        run = RunFolder.open(args.run_dir or args.resume)
        if args.resume and main_process:
            claim_resume(run)
        elif args.resume:
            check_resumable(run)
        cfg = TrainConfig.from_dict(run.config())
        from bincls.training.loop import train

        result = train(cfg, listeners=console, run=run, resume=bool(args.resume), started=_process_start())
        _print_run(result)
        return 0
    if not args.paths:
        raise BinclsError("Give the data to train on: two class folders, or one root folder.")
    from bincls.training.preflight import preflight

    # The preset completes the settings once, here; a mistyped path or a wrong combination fails now,
    # before a run folder exists.
    resolved = preflight(from_arguments(args))
    # One run at a time per runs folder, as in the app: a second `train` is told which run is busy.
    run = claim_new_run(resolved.config, args.runs_dir) if main_process else None
    from bincls.training.loop import train

    result = train(resolved, runs_dir=args.runs_dir, listeners=console, run=run, started=_process_start())
    _print_run(result)
    return 0


def _process_start() -> float:
    """When this process started: a time budget covers the whole command, imports and checks included."""
    import psutil

    return psutil.Process().create_time()


def _console(summary: bool = False) -> list:
    from bincls.training.distributed import world_from_env
    from bincls.training.events import ConsoleProgress

    return [ConsoleProgress(print_summary=summary)] if world_from_env().is_main else []  # one bar in all


def _print_run(result) -> None:
    if result.run is not None:  # only rank 0 of a torchrun job keeps the run folder
        print(result.run.path)


def _add_train(sub) -> None:
    from bincls.training.config import add_arguments

    p = sub.add_parser("train", help="train a model; prints the run folder as its last line")
    add_arguments(p)
    p.add_argument("--run-dir", help="train the run prepared in this folder (its config.json)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted, stopped or failed run from "
                   "its last checkpoint, on the same split")  # fmt: skip
    p.add_argument("--runs-dir", help="where run folders go (default $BINCLS_RUNS_DIR or ./runs)")
    p.add_argument(
        "--summary",
        action="store_true",
        help="print the model's layer table (always written to the run folder: model_summary.txt)",
    )
    p.set_defaults(func=cmd_train)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bincls.inference.evaluate import evaluate
    from bincls.inference.intervals import fmt_interval
    from bincls.json_files import json_safe

    ev = evaluate(args.source, data=args.data, threshold=args.threshold, device=args.device, tta=args.tta)
    if args.csv:
        ev.table.to_csv(args.csv, index=False)
    if args.json:
        print(json.dumps(json_safe(ev.to_dict()), indent=1, ensure_ascii=False))
        return 0
    m = ev.metrics
    print(f"Evaluated {m['n']} images ({ev.source}) with {ev.checkpoint}; 95% intervals in brackets")
    for key in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auroc"):
        print(f"  {key:<18} {fmt_interval(m[key], m.get(key + '_ci', (math.nan, math.nan)), digits=4)}")
    print(f"  {'loss':<18} {m['loss']:.4f}")
    print(f"  {'calibration error':<18} {m['ece']:.4f} (uncalibrated {m['ece_uncalibrated']:.4f})")
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    a, b = ev.class_names
    print(f"  confusion (rows true, cols predicted; threshold {m['threshold']:g}):")
    print(f"    {'':<14}{a[:12]:>14}{b[:12]:>14}")
    print(f"    {a[:12]:<14}{tn:>14}{fp:>14}")
    print(f"    {b[:12]:<14}{fn:>14}{tp:>14}")
    for note in ev.notes:
        print(f"Note: {note}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from bincls.compute import cpu_threads
    from bincls.inference.batch_predict import prediction_threads
    from bincls.inference.predict import Predictor, expand_inputs
    from bincls.json_files import json_safe

    files = expand_inputs(args.inputs)
    if not files:
        raise BinclsError("No files to predict in " + ", ".join(args.inputs) + ".")
    predictor = Predictor(args.checkpoint, device=args.device, threshold=args.threshold, tta=args.tta)
    with cpu_threads(prediction_threads(predictor.device)):  # fair to a run training on this CPU
        preds = predictor.predict_many(files)
    if args.json:
        print(json.dumps([json_safe(p.__dict__) for p in preds], indent=1, ensure_ascii=False))
    elif args.csv:
        import csv

        w = csv.writer(sys.stdout)
        p1 = "p_" + predictor.class_names[1]
        w.writerow(["path", "class", "probability", p1, "ood", "ood_score", "error"])
        for p in preds:
            ood = "" if p.ood is None else str(p.ood).lower()
            w.writerow([p.source, p.class_name or "", _num(p.probability), _num(p.p_class1), ood,
                        _num(p.ood_score), p.error or ""])  # fmt: skip
    else:
        for p in preds:
            if p.error:
                print(f"{p.source}\tERROR: {p.error}")
            else:
                unlike = "\tunlike the training images" if p.ood else ""
                print(f"{p.source}\t{p.class_name}\t{p.probability:.3f}{unlike}")
    return 0 if any(p.error is None for p in preds) else 1


def cmd_audit(args: argparse.Namespace) -> int:
    from bincls.audit.label_audit import audit
    from bincls.data.overlay import load_decisions
    from bincls.json_files import json_safe

    if len(args.paths) > 2:
        raise BinclsError(f"audit takes one or two paths; got {len(args.paths)}.")
    result = audit(args.paths, _names(args.names), progress=None if args.json else _stage_printer())
    decided = load_decisions([str(p) for p in args.paths])
    if args.json:
        out = result.to_dict()
        for row in out["rows"]:
            row["decision"] = decided.get(row["path"])
        print(json.dumps(json_safe(out), indent=1, ensure_ascii=False))
        return 0
    print(f"{len(result.rows)} images to look at, of {result.images} ({result.model} features, "
          f"{result.seconds:.0f} s); most likely problems first:")  # fmt: skip
    for r in result.rows[: args.limit]:
        change = f"{r.given} -> {r.suggested}" if r.kind == "label" else r.given
        mark = f" [{decided[r.path]}]" if r.path in decided else ""
        print(f"{r.score:6.3f}  {r.kind:<14} {change:<24} {r.path}{mark}")
    if len(result.rows) > args.limit:
        print(f"... and {len(result.rows) - args.limit} more (--limit, or --json for all)")
    for note in result.notes:
        print(f"Note: {note}")
    return 0


def _stage_printer():
    if not sys.stderr.isatty():
        return None

    def show(stage: str, done: int, total: int) -> None:
        print(f"\r{stage} {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    return show


def cmd_export(args: argparse.Namespace) -> int:
    from bincls.inference.export import export_onnx

    if args.format != "onnx":
        return _export_elsewhere(args)
    done = export_onnx(args.checkpoint, out=args.output, threshold=args.threshold, input=args.input,
                       batched=args.batch, int8=args.int8, verify_images=args.verify_images)  # fmt: skip
    print(done.report.summary())
    print(done.onnx)
    print(done.metadata)
    return 0


def _export_elsewhere(args: argparse.Namespace) -> int:
    """--format web | tflite | coreml: the checked ONNX export's model, for a browser or a phone."""
    if args.input != "pixels" or args.batch:
        raise BinclsError(f"--format {args.format} takes no --input or --batch: it decides its own input.")
    if args.int8:
        raise BinclsError(f"--format {args.format} is fp32 only: it promises bincls predict's answers.")
    if args.format == "web":
        from bincls.inference.web_export import export_web, summary

        print(summary(export_web(args.checkpoint, args.output, threshold=args.threshold,
                                 verify_images=args.verify_images)))  # fmt: skip
        return 0
    from bincls.inference.mobile_export import export_mobile

    done = export_mobile(args.checkpoint, args.format, args.output, threshold=args.threshold,
                         verify_images=args.verify_images)  # fmt: skip
    print(done.summary())
    print(done.path)
    print(done.metadata)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bincls.serve.app import Limits
    from bincls.serve.server import serve

    limits = Limits(max_files=args.max_files, max_request_bytes=_mib(args.max_request_mb, "--max-request-mb"),
                    max_held_bytes=_mib(args.max_held_mb, "--max-held-mb"))  # fmt: skip
    serve(args.source, args.host, args.port, precision=args.precision, threshold=args.threshold,
          limits=limits, slots=args.threads, access_log=not args.no_access_log,
          allowed_hosts=args.allowed_host, collect=args.collect, collect_max=args.collect_max,
          collect_margin=args.collect_margin)  # fmt: skip
    return 0


def _mib(value: float, flag: str) -> int:
    """MiB as bytes; NaN, inf and numbers that are no size are refused here, before any arithmetic."""
    if not (math.isfinite(value) and 0 < value <= 2**20):
        raise BinclsError(f"{flag} must be a positive number of MiB, got {value!r}.")
    return int(value * 2**20)


def _add_tta(p: argparse.ArgumentParser) -> None:
    tta = p.add_mutually_exclusive_group()
    help_on = "average the image's and its mirror image's logits (default: as training chose on validation)"
    tta.add_argument("--tta", dest="tta", action="store_const", const=True, default=None, help=help_on)
    tta.add_argument("--no-tta", dest="tta", action="store_const", const=False, help="no mirror average")


def _threshold(text: str) -> float:
    """--threshold: a number from 0 to 1 (argparse's float would take "nan", which predicts one class)."""
    from bincls.checks import check_threshold

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    try:
        return check_threshold(value, "--threshold")
    except BinclsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}"


def _add_serve_precision(p: argparse.ArgumentParser) -> None:
    precision = p.add_mutually_exclusive_group()
    precision.add_argument(
        "--int8",
        dest="precision",
        action="store_const",
        const="int8",
        default="auto",
        help="INT8 or nothing (default for a run: INT8 with fp32 for images near a "
        "threshold when it passed its check and measured faster, else fp32)",
    )
    precision.add_argument(
        "--fp32",
        dest="precision",
        action="store_const",
        const="fp32",
        help="fp32 only: bincls predict's probabilities too, at more CPU per image",
    )


def _add_export(sub) -> None:
    """`export`: ONNX (default), the web page's folder, or phone files."""
    p = sub.add_parser("export", help="write a checkpoint as ONNX, checked against PyTorch first")
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR")
    p.add_argument("--format", default="onnx", choices=["onnx", "web", "tflite", "coreml"],
                   help="onnx (default); web: a folder with a page that runs the model in any browser, "
                        "offline, and its zip; tflite (LiteRT) and coreml: files for phone apps, "
                        "with pip install 'bincls[mobile]'")  # fmt: skip
    where = "default: beside the checkpoint (best.onnx, best.tflite, best.mlpackage; RUN/web)"
    p.add_argument("-o", "--output", metavar="PATH", help=where)
    p.add_argument("--threshold", type=_threshold, default=None, help="default: the run's saved threshold")
    p.add_argument("--int8", action="store_true", help="INT8 quantization calibrated on the training images")
    p.add_argument("--input", default="pixels", choices=["pixels", "tensor"],
                   help="pixels (default): uint8 RGB HxWx3 of any size, preprocessing inside; "
                        "tensor: the normalized float NCHW tensor")  # fmt: skip
    p.add_argument("--batch", action="store_true", help="pixels as NxHxWx3 (one size per batch)")
    p.add_argument("--verify-images", type=int, default=200, metavar="N",
                   help="test and val images to check the export on (default 200)")  # fmt: skip
    p.set_defaults(func=cmd_export)


def _add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve a model over HTTP: POST images to /predict (docs at /docs)")
    p.add_argument("source", metavar="RUN_DIR_CHECKPOINT_OR_ONNX")
    p.add_argument("--host", default="127.0.0.1", help="other than loopback needs $BINCLS_API_KEY")
    p.add_argument("--port", type=int, default=8000)
    _add_serve_precision(p)
    p.add_argument("--threshold", type=_threshold, default=None, help="default: the run's saved threshold")
    p.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="also answer requests addressed to NAME (repeatable; '*.example.com'; '*' for any); "
                        "the loopback names and the --host address always")  # fmt: skip
    p.add_argument("--max-files", type=int, default=64, help="images per request (default 64, at most 1000)")
    p.add_argument("--max-request-mb", type=float, default=512, help="request size, MiB (default 512)")
    p.add_argument("--max-held-mb", type=float, default=1024,
                   help="all requests' bodies held at once, MiB (default 1024; beyond: 503)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None,
                   help="images scored at once (default: CPU cores; 1 to 64)")  # fmt: skip
    p.add_argument("--collect", metavar="DIR",
                   help="keep the images near the threshold or unlike the training images in DIR (new "
                        "or empty), answers in DIR/collected.csv: a pile for `bincls label`")  # fmt: skip
    p.add_argument("--collect-max", type=int, default=1000, metavar="N",
                   help="images kept in DIR, oldest first out (default 1000)")  # fmt: skip
    p.add_argument("--collect-margin", type=float, default=0.1, metavar="P",
                   help="near the threshold: P(class 1) within P of it (default 0.1)")  # fmt: skip
    p.add_argument("--no-access-log", action="store_true", help="do not log every request")
    p.set_defaults(func=cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bincls", description="Binary image classification.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("scan", help="check every file of a dataset and show its split")
    _add_data_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--ignore-audit",
        action="store_true",
        help="split without the label audit's decisions (as train --ignore-audit)",
    )
    p.set_defaults(func=cmd_scan)

    from bincls.cli_weights import add_weights_command
    from bincls.training.config import DEVICES

    _add_train(sub)
    add_weights_command(sub)

    p = sub.add_parser("audit", help="likely wrong labels, outliers and near-duplicates, ranked (reads only)")
    _add_data_args(p)
    p.add_argument("--json", action="store_true", help="print the ranked rows as JSON")
    p.add_argument("--limit", type=int, default=40, help="rows to print (default 40)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("evaluate", help="metrics on a run's test split or on other folders")
    p.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("--data", nargs="+", metavar="PATH", help="evaluate on these folders instead")
    p.add_argument("--threshold", type=_threshold, default=None)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--csv", metavar="FILE", help="also write per-image results (path,true,predicted,probability)"
    )
    _add_tta(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="class and probability for images or folders")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--threshold", type=_threshold, default=None)
    p.add_argument("--device", default="auto", choices=DEVICES)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    _add_tta(p)
    p.set_defaults(func=cmd_predict)

    _add_export(sub)

    _add_serve_parser(sub)
    add_label_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BinclsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused (a full disk, a read-only folder): no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
