"""The one settings schema of a training run: validated, saved as the run's config.json.

Each field of `TrainConfig` carries its help text, its bounds (or choices), its CLI flag and how the Train
page shows it, so a new setting is one field here: its check and message, the `train` parser
(`add_arguments`), `from_arguments`, `to_command` and the Train page's widget, key and bounds all follow
from it. Kept free of torch so that the CLI can parse arguments without loading it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bincls.checks import is_bool, is_int, is_number, is_text, optional
from bincls.errors import BinclsError
from bincls.models.config import IMG_SIZE_RANGE

PRESETS = ("auto", "fast", "best", "scratch")
OPTIMIZERS = ("adam", "adamw", "sgd", "sgd-momentum")
SCHEDULES = ("cosine", "onecycle", "none")
DEVICES = ("auto", "cpu", "cuda", "mps")
RUN_KEYS = ("threshold",)  # keys a run's config.json may carry that are not settings (Evaluate saves it)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 1e-2, "sgd-momentum": 1e-2}


def _is_size(v) -> bool:
    return isinstance(v, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*[KMGT]?B?\s*", v.upper()) is not None


def _comma_list(text: str) -> list[str]:
    return [n.strip() for n in text.split(",")]


@dataclass(frozen=True)
class Shown:
    """How the Train page shows a setting: its label, the step of a number field, a printf format, a help
    text (the schema's own help when None), and the page's section ("model", "training", "system";
    None: a widget of its own, drawn by the page where it belongs)."""

    label: str
    section: str | None = "training"
    step: float | None = None
    format: str | None = None
    help: str | None = None


def _bounded(low: float | None, high: float | None, whole: bool) -> tuple[Callable[[Any], bool], str]:
    kind = "a whole number" if whole else "a number"
    base = is_int if whole else is_number
    if low is not None and high is not None:
        return (lambda v: base(v) and low <= v <= high), f"{kind} from {low:g} to {high:g}"
    if low is not None:
        return (lambda v: base(v) and v >= low), f"{kind} >= {low:g}"
    return base, kind


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    check: Callable[[Any], bool] | None = None,
    expect: str | None = None,
    choices: tuple[str, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    whole: bool = False,
    page: Shown | None = None,
    flag: str | None = None,
    off_flag: str | None = None,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    show: Callable[[Any], str] | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A settings field. A number's bounds are `low` and `high` (inclusive; `whole` for an int): its check,
    its message, the CLI's parsing and the Train page's widget all follow from them. `page`: how the Train
    page shows it (None: not on the page). `flag`: its CLI option (None: not on the command line, or
    positional); `parse` turns the flag's text into the value, `show` the value back into text for
    `to_command`. A bool's flag switches it away from its default (`--tensorboard`, `--no-balance`); a
    bool that the preset decides (default None) has a `flag` for True and an `off_flag` for False
    (`--augment`, `--no-augment`). A setting with `choices` is checked against them."""
    if choices is not None:  # None is allowed where it is the default: the preset decides
        check = lambda v: v in choices or (v is None and default is None)  # noqa: E731
        expect = f"one of {', '.join(choices)}"
    elif low is not None or high is not None or (whole and check is None):
        check, expect = _bounded(low, high, whole)
        parse = parse or (int if whole else float)
        if default is None:
            check, expect = optional(check), expect
    meta = {"help": help, "check": check, "expect": expect, "choices": choices, "low": low, "high": high,
            "whole": whole, "page": page, "flag": flag, "off_flag": off_flag, "metavar": metavar,
            "parse": parse, "show": show}  # fmt: skip
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _show_number(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass
class TrainConfig:
    """Everything needed to repeat a run; saved as the run's config.json."""

    data: list[str] = setting(
        help="two class folders, one root / pre-split root, or a labelled CSV", expect="1 or 2 paths",
        check=lambda v: isinstance(v, list) and 1 <= len(v) <= 2 and all(is_text(p) for p in v),
    )  # fmt: skip
    class_names: list[str] | None = setting(
        None, help="rename the two classes", flag="--names", metavar="NAME0,NAME1", parse=_comma_list,
        show=",".join,
        check=optional(lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v)),
        expect="a list of two names, or null",
    )  # fmt: skip
    preset: str = setting(
        "auto", help="the recipe for every setting not given: fast (a pretrained backbone as a fixed feature "
        "extractor), best (a staged fine-tune), scratch (no pretrained weights), auto (fast when pretrained "
        "weights are at hand, else scratch)", flag="--preset", choices=PRESETS,
        page=Shown("Recipe", section=None),
    )  # fmt: skip
    model: str | None = setting(
        None, help="a registered model name (README lists them; default: the preset's)", flag="--model",
        check=optional(is_text), expect="a model name", page=Shown("Model", section=None),
    )  # fmt: skip
    weights: str = setting(
        "auto", help="imagenet, none, a state_dict FILE, or auto (the preset's: imagenet when at hand)",
        flag="--weights", metavar="WEIGHTS", check=lambda v: isinstance(v, str),
        expect="auto, imagenet, none or a file", page=Shown("Weights", section=None),
    )  # fmt: skip
    freeze_backbone: bool | None = setting(
        None, help="train only the new head on a fixed pretrained backbone", flag="--freeze-backbone",
        off_flag="--fine-tune", check=optional(is_bool), expect="true, false or null",
        page=Shown("Training", section=None),
    )  # fmt: skip
    head_epochs: int | None = setting(
        None, help="when fine-tuning a pretrained backbone: epochs that train only the head first",
        flag="--head-epochs", low=0, high=1000, whole=True,
        page=Shown("Head epochs first", section="model", help="Epochs that train only the new head on the "
                   "frozen backbone before the whole network is fine-tuned."),
    )  # fmt: skip
    img_size: int | None = setting(
        None, help="image side in pixels (default: the model's own size)", flag="--img-size",
        low=IMG_SIZE_RANGE[0], high=IMG_SIZE_RANGE[1], whole=True, page=Shown("Image size (px)", step=16),
    )  # fmt: skip
    epochs: int | None = setting(
        None, help="epochs to train (at most, with a time budget)", flag="--epochs", low=1, high=10000,
        whole=True, page=Shown("Epochs (at most)"),
    )  # fmt: skip
    time_budget: float | None = setting(
        None, help="seconds the whole run may take, features and calibration included: training stops in "
        "time, keeping the best checkpoint, and the preset plans its epochs to fit (0: no budget)",
        flag="--time-budget", low=0, high=7 * 24 * 3600, show=_show_number,
        page=Shown("Time budget (minutes, 0: none)", section=None, step=0.5, help="The whole run stops "
                   "within it, keeping the best checkpoint; the recipe plans its epochs to fit."),
    )  # fmt: skip
    batch_size: int = setting(
        32, help="images per step, over all processes", flag="--batch-size", low=1, high=4096, whole=True,
        page=Shown("Batch size"),
    )  # fmt: skip
    optimizer: str | None = setting(
        None, help="optimizer", flag="--optimizer", choices=OPTIMIZERS, page=Shown("Optimizer"),
    )  # fmt: skip
    lr: float | None = setting(
        None, help="learning rate (default 1e-3 for adam/adamw, 1e-2 for sgd)", flag="--lr", low=1e-7,
        high=10.0, show=_show_number,
        page=Shown("Learning rate", step=1e-4, format="%g", help="Of the head; a fine-tuned pretrained "
                   "backbone learns at a tenth of it at most."),
    )  # fmt: skip
    weight_decay: float | None = setting(
        None, help="weight decay", flag="--weight-decay", low=0.0, high=1.0, show=_show_number,
        page=Shown("Weight decay", step=0.01, format="%g"),
    )  # fmt: skip
    layer_decay: float | None = setting(
        None, help="fine-tuning: each earlier layer of a pretrained backbone learns this much slower "
        "(1: all alike)", flag="--layer-decay", low=0.01, high=1.0, show=_show_number,
    )  # fmt: skip
    schedule: str | None = setting(
        None, help="learning-rate schedule", flag="--schedule", choices=SCHEDULES, page=Shown("LR schedule"),
    )  # fmt: skip
    warmup_epochs: float | None = setting(
        None, help="epochs of linear learning-rate warm-up (of the fine-tuning, after the head epochs)",
        flag="--warmup-epochs", low=0.0, high=1000.0, show=_show_number,
        page=Shown("Warm-up epochs", step=0.5),
    )  # fmt: skip
    label_smoothing: float | None = setting(
        None, help="label smoothing of the loss (0: none)", flag="--label-smoothing", low=0.0, high=0.49,
        show=_show_number, page=Shown("Label smoothing", step=0.05),
    )  # fmt: skip
    grad_clip: float = setting(
        0.0, help="clip the gradients' global norm to this before each step (0: no clipping)",
        flag="--grad-clip", low=0.0, high=1000.0, show=_show_number,
        page=Shown("Gradient clipping", step=0.5, help="Largest global norm of the gradients per step; "
                   "0: off. Steadies training from scratch at a high learning rate."),
    )  # fmt: skip
    patience: int | None = setting(
        None, help="early stopping: epochs without val-loss improvement before stopping; 0 = off",
        flag="--patience", low=0, high=10000, whole=True,
        page=Shown("Patience", help="Early stopping: epochs without a better val loss before it stops; "
                   "0: off."),
    )  # fmt: skip
    split: list[float] = setting(
        help="train,val,test shares", flag="--split", metavar="TRAIN,VAL,TEST",
        default_factory=lambda: [0.7, 0.2, 0.1],
        parse=lambda text: _split_shares(text), show=lambda v: ",".join(f"{s:g}" for s in v),
        check=lambda v: isinstance(v, (list, tuple)) and len(v) == 3 and all(is_number(s) for s in v),
        expect="three numbers like [0.7, 0.2, 0.1]",
    )  # fmt: skip
    seed: int = setting(
        0, help="seed for the split and training", flag="--seed", low=0, high=2**32 - 1, whole=True,
        page=Shown("Seed", step=1, help="Seeds the split and the training."),
    )  # fmt: skip
    device: str = setting(
        "auto", help="where to train", flag="--device", choices=DEVICES,
        page=Shown("Device", section="system"),
    )  # fmt: skip
    augment: bool | None = setting(
        None, help="random flips, crops and colour jitter in training (default: the preset's)",
        flag="--augment", off_flag="--no-augment", check=optional(is_bool), expect="true, false or null",
        page=Shown("Augmentation", help="Random flips, crops and colour jitter in training."),
    )  # fmt: skip
    balance: bool = setting(
        True, help="do not weight the loss by the class balance", flag="--no-balance",
        check=is_bool, expect="true or false",
    )  # fmt: skip
    workers: int | None = setting(
        None, help="data loader worker processes (default: from the core count; never more than the cores)",
        flag="--workers", low=0, high=256, whole=True,
    )  # fmt: skip
    tensorboard: bool = setting(
        False, help="also log to TensorBoard (needs tensorboard)", flag="--tensorboard",
        check=is_bool, expect="true or false",
    )  # fmt: skip
    precision: str = setting(
        "auto", help="auto: what measured fastest for the device and model", flag="--precision",
        choices=PRECISIONS, page=Shown("Precision", section="system", help="auto: what measured fastest "
                                       "for this device and model (bench/compute_plan.py)."),
    )  # fmt: skip
    memory_budget: str | None = setting(
        None, help="e.g. 4G: above it, images stream from disk (default: half of the free RAM)",
        flag="--memory-budget", metavar="SIZE", check=optional(_is_size), expect="a size like 4G or 512M",
        page=Shown("Memory budget", section="system", help="A size like 4G or 512M. Above it, images stream "
                   "from disk instead of memory."),
    )  # fmt: skip
    audit_decisions: bool = setting(
        True, help="ignore the label audit's decisions (excluded and relabelled images) for this dataset",
        flag="--ignore-audit", check=is_bool, expect="true or false",
    )  # fmt: skip
    init_from: str | None = setting(
        None, help="continue training a finished run (its folder or a checkpoint): start from its best "
        "weights in a new run, keeping its split for the images it had", flag="--continue-from",
        metavar="RUN", check=optional(is_text), expect="a run folder or checkpoint",
    )  # fmt: skip
    name: str | None = setting(
        None, help="a name for the run, shown beside its id", flag="--name",
        check=optional(lambda v: isinstance(v, str) and len(v) <= 200), expect="at most 200 characters",
        page=Shown("Run name (optional)", section=None),
    )  # fmt: skip

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Clear messages for values a user (or a hand-edited config.json) can get wrong."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not f.metadata["check"](value):
                raise BinclsError(f"{f.name} must be {f.metadata['expect']}, got {value!r}")

    @property
    def learning_rate(self) -> float:
        return float(self.lr if self.lr is not None else DEFAULT_LR[self.optimizer or "adam"])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every setting's default (data aside): what the CLI, the API and the Train page start from."""
        return {k: v for k, v in cls(data=["."]).to_dict().items() if k != "data"}

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        if not isinstance(raw, dict):
            raise BinclsError(f"A run config must be a JSON object, got {type(raw).__name__}.")
        raw = {k: v for k, v in raw.items() if k not in RUN_KEYS}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise BinclsError(f"Unknown setting(s) in the run config: {', '.join(unknown)}.")
        no_default = dataclasses.MISSING
        required = [f.name for f in dataclasses.fields(cls) if no_default is f.default is f.default_factory]
        missing = [k for k in required if k not in raw]
        if missing:
            raise BinclsError(f"The run config is incomplete: it lacks the setting(s) {', '.join(missing)}.")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise BinclsError(f"The run config is incomplete or wrong: {exc}") from None


def page_settings() -> dict[str, dataclasses.Field]:
    """The settings the Train page shows, in the schema's order, by name."""
    return {f.name: f for f in dataclasses.fields(TrainConfig) if f.metadata["page"] is not None}


def _split_shares(text: str) -> list[float]:
    from bincls.data.split import SplitConfig  # the split's own parser: "70,20,10" and two shares work too

    s = SplitConfig.parse(text)
    return [s.train, s.val, s.test]


# The command line, generated from the schema ----------------------------------------------------------
def _flagged() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata["flag"]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `train` options, one per setting that has a flag; the data is the positional PATHs."""
    parser.add_argument("paths", nargs="*", metavar="PATH", help=TrainConfig.__dataclass_fields__["data"]
                        .metadata["help"])  # fmt: skip
    for f in _flagged():
        m = f.metadata
        if isinstance(f.default, bool):
            parser.add_argument(m["flag"], dest=f.name, action="store_false" if f.default else "store_true",
                                help=m["help"])  # fmt: skip
            continue
        if m["off_flag"]:  # a bool the preset decides: one flag each way, neither given leaves it None
            parser.add_argument(m["flag"], dest=f.name, action="store_const", const=True, help=m["help"])
            parser.add_argument(m["off_flag"], dest=f.name, action="store_const", const=False,
                                help=f"the opposite of {m['flag']}")  # fmt: skip
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        choices = m["choices"]
        shown = f" (default {(m['show'] or _show_number)(default)})" if default is not None else ""
        parser.add_argument(
            m["flag"], dest=f.name, metavar=m["metavar"], choices=choices, type=m["parse"] or str,
            default=default, help=m["help"] + ("" if choices else shown),
        )  # fmt: skip


def from_arguments(args: argparse.Namespace) -> TrainConfig:
    """The config that parsed `train` arguments describe."""
    values = {f.name: getattr(args, f.name) for f in _flagged()}
    return TrainConfig(data=[str(p) for p in args.paths], **values)


def to_command(cfg: TrainConfig, processes: int = 1) -> list[str]:
    """The command line that trains `cfg`: shown in the app so a user can run it elsewhere, e.g. on a
    cluster with torchrun. Only settings that differ from the defaults are spelled out."""
    head = ["python", "-m", "bincls"]
    if processes > 1:
        head = ["torchrun", f"--nproc_per_node={processes}", "-m", "bincls"]
    out = [*head, "train", *cfg.data]
    defaults = TrainConfig.defaults()
    for f in _flagged():
        value, flag = getattr(cfg, f.name), f.metadata["flag"]
        if f.name == "lr" and cfg.optimizer and value == DEFAULT_LR[cfg.optimizer]:
            continue  # the optimizer's own default: --lr would only add noise
        if value is None or value == defaults[f.name]:
            continue
        if isinstance(value, bool):
            out.append(flag if value or not f.metadata["off_flag"] else f.metadata["off_flag"])
        else:
            out += [flag, (f.metadata["show"] or _show_number)(value)]
    return out


def read_run_config(path: str | os.PathLike) -> TrainConfig:
    """A run's config.json (file or run folder) as a checked `TrainConfig`.

    Raises `BinclsError` naming the file, and the setting when one is wrong (a hand-edited file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BinclsError(f"{path} cannot be read ({exc.strerror or exc}).") from None
    except ValueError as exc:
        raise BinclsError(f"{path} is not valid JSON ({exc}); fix it or delete the run.") from None
    try:
        return TrainConfig.from_dict(raw)
    except BinclsError as exc:
        raise BinclsError(f"{path}: {exc}") from None


def config_problem(run_path: str | os.PathLike) -> str | None:
    """Why the run's config.json does not read back as settings (edited by hand), or None."""
    try:
        read_run_config(run_path)
    except BinclsError as exc:
        return str(exc)
    return None
