"""The `weights` command: which ImageNet weights are here, and taking a weights file of the user's, whatever
its name, as them (`bincls.models.weights.import_weights`). Apart from cli.py, which is at its size."""

from __future__ import annotations

import argparse

from bincls.errors import BinclsError


def add_weights_command(sub) -> None:
    p = sub.add_parser("weights", help="the ImageNet weights found here; `add FILE`: take a weights file")
    p.add_argument("action", nargs="?", choices=["list", "add"], default="list")
    p.add_argument("file", nargs="?", metavar="FILE", help="add: a state_dict file, whatever its name")
    p.add_argument("--model", default=None, help="add: the architecture it must hold (default: any)")
    p.set_defaults(func=cmd_weights)


def cmd_weights(args: argparse.Namespace) -> int:
    from bincls.models.weights import BACKBONES, cached_imagenet_file, import_weights, missing_weights_help

    if args.action == "add":
        if not args.file:
            raise BinclsError("Give the weights file: python -m bincls weights add FILE.")
        name, copy = import_weights(args.file, args.model)
        print(f"{args.file} holds {name} weights (every layer's name and shape checked); copied to {copy}, "
              "where --weights imagenet, the presets and the audit find them.")  # fmt: skip
        return 0
    found = {name: cached_imagenet_file(name) for name in BACKBONES}
    for name, path in found.items():
        print(f"{name:<20} {path or '-'}")
    if not any(found.values()):
        print(missing_weights_help())
    return 0
