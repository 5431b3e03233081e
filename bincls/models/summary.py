"""A Keras-style model summary: per-layer output shapes and parameter counts."""

from __future__ import annotations

from dataclasses import dataclass

import torchinfo
from torch import nn


@dataclass(frozen=True)
class SummaryRow:
    name: str
    type: str
    output_shape: tuple[int, ...] | None  # without the batch dimension; None if not called in forward
    params: int
    trainable: bool


@dataclass(frozen=True)
class ModelSummary:
    rows: list[SummaryRow]
    total_params: int
    trainable_params: int
    size_mb: float  # parameters and buffers, i.e. roughly the checkpoint's size


def model_summary(model: nn.Module, img_size: int) -> ModelSummary:
    """Per-layer output shapes and parameter counts, like Keras' model.summary(), measured by torchinfo.

    Rows are the leaves, plus any container holding parameters of its own, so that they add up to the
    total; train/eval modes are left as they were (torchinfo runs the model in eval mode).
    """
    names = {m: name for name, m in model.named_modules()}
    modes = {m: m.training for m in model.modules()}
    device = next(model.parameters()).device
    try:
        stats = torchinfo.summary(model, input_size=(1, 3, img_size, img_size), device=device, verbose=0,
                                  depth=64, mode="eval")  # fmt: skip
    except RuntimeError as exc:
        # torchinfo wraps what the forward pass raised: callers need the real error (out of memory,
        # an image too small for the architecture), not "Failed to run torchinfo".
        if exc.__cause__ is not None:
            raise exc.__cause__ from None
        raise
    finally:
        for m, training in modes.items():
            m.training = training
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in stats.summary_list:  # in call order; a module called twice keeps its first shape
        name = names.get(layer.module)
        if name and name not in shapes and isinstance(layer.output_size, list) and layer.output_size:
            shapes[name] = tuple(layer.output_size[1:])
    rows = []
    for name, m in model.named_modules():
        own = list(m.parameters(recurse=False))
        if not name or (list(m.children()) and not own):
            continue
        rows.append(SummaryRow(name=name, type=type(m).__name__, output_shape=shapes.get(name),
                               params=sum(p.numel() for p in own),
                               trainable=bool(own) and all(p.requires_grad for p in own)))  # fmt: skip
    params = list(model.parameters())
    size = sum(t.numel() * t.element_size() for t in [*params, *model.buffers()])
    return ModelSummary(
        rows=rows,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        size_mb=size / 2**20,
    )


def format_summary(summary: ModelSummary) -> str:
    """A text table of the summary, Keras style."""
    table = [("Layer (type)", "Output shape", "Params", "Trainable")]
    for r in summary.rows:
        shape = "-" if r.output_shape is None else str([None, *r.output_shape]).replace("None", "B")
        trainable = "yes" if r.trainable else ("no" if r.params else "")
        table.append((f"{r.name} ({r.type})", shape, f"{r.params:,}", trainable))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}".rstrip() for a, b, c, d in table]
    rule = "-" * len(lines[0])
    total, trainable = summary.total_params, summary.trainable_params
    return "\n".join(
        [lines[0], rule, *lines[1:], rule,
         f"Total params: {total:,}", f"Trainable params: {trainable:,}",
         f"Non-trainable params: {total - trainable:,}", f"Size: {summary.size_mb:.2f} MB"]
    )  # fmt: skip
