"""Where training batches come from: decoded tensors in memory, files streamed by workers, or
cached backbone features. The training loop iterates any of them the same way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from bincls.compute import ComputePlan, plan_inference
from bincls.data.dataset import DataSource, ImageFileDataset
from bincls.data.decode_cache import dataset_bytes, decode_images, load_or_decode, memory_budget
from bincls.data.transforms import (
    Augment,
    BatchTransform,
    Preprocess,
    build_eval_transform,
    build_train_transform,
    train_margin,
)

Batch = tuple[torch.Tensor, torch.Tensor]


class TensorBatches:
    """Batches cut from tensors already in memory (uint8 images or float features)."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        device: torch.device,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        channels_last: bool = False,
    ):
        self.x, self.y = x, y
        self.batch_size, self.device = batch_size, device
        self.transform, self.shuffle, self.generator = transform, shuffle, generator
        self.channels_last = channels_last and x.dim() == 4
        # As in the streaming loader, only a last batch of one is dropped (BatchNorm cannot train on it).
        self.drop_last = shuffle and len(x) % batch_size == 1 and len(x) > 1

    def __len__(self) -> int:
        n = len(self.x) // self.batch_size
        return n + (1 if len(self.x) % self.batch_size and not self.drop_last else 0)

    @property
    def n_items(self) -> int:
        return len(self.x)

    def sample(self, n: int, seed: int = 0) -> TensorBatches:
        """At most `n` of the items, chosen at random (all of them when there are fewer)."""
        if len(self.x) <= n:
            return self
        idx = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(seed))[:n]
        return TensorBatches(self.x[idx], self.y[idx], self.batch_size, self.device, self.transform,
                             channels_last=self.channels_last)  # fmt: skip

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.x[idx].to(self.device, non_blocking=True)
            if self.transform is not None:
                x = self.transform(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.y[idx].to(self.device, non_blocking=True)


class LoaderBatches:
    """Streaming: a DataLoader whose workers decode and transform each file per epoch."""

    def __init__(self, loader: DataLoader, device: torch.device, channels_last: bool = False):
        self.loader, self.device, self.channels_last = loader, device, channels_last

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def n_items(self) -> int:
        return len(self.loader.dataset)

    def close(self) -> None:
        """Let the loader go: its persistent workers shut down with it (they ignore SIGTERM, and a process
        that still holds them waits for them at exit)."""
        self.loader = None

    def sample(self, n: int, seed: int = 0) -> LoaderBatches:
        """At most `n` of the items, chosen at random, read once by fresh workers."""
        dataset = self.loader.dataset
        if len(dataset) <= n:
            return self
        idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].tolist()
        loader = DataLoader(Subset(dataset, idx), batch_size=self.loader.batch_size,
                            num_workers=self.loader.num_workers, worker_init_fn=_worker_init)  # fmt: skip
        return LoaderBatches(loader, self.device, self.channels_last)

    def __iter__(self) -> Iterator[Batch]:
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)


@dataclass
class TrainingData:
    train: TensorBatches | LoaderBatches
    val: TensorBatches | LoaderBatches
    mode: str  # "memory", "stream" or "features"
    message: str
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor]  # how a batch goes through the model
    # The validation split as whole images (eval transform), whatever `val` holds: for calibrating the
    # finished model the way it will predict (cached features cannot be mirrored for TTA).
    val_images: TensorBatches | LoaderBatches | None = None
    # The training split the same way (no augmentation), or its cached features: what the finished
    # model's out-of-distribution detector is fitted on.
    train_images: TensorBatches | LoaderBatches | None = None
    train_features: torch.Tensor | None = None
    # The validation images' features as they are and mirrored, in fp32 as prediction computes them:
    # with a frozen backbone, calibration, the choice of test-time augmentation and the detector reuse
    # them instead of running the backbone on the validation images again.
    val_views: tuple[torch.Tensor, torch.Tensor] | None = None
    fp32_image_s: float | None = None  # measured seconds of one image's fp32 forward pass (the val views')

    def close(self) -> None:
        for batches in (self.train, self.val, self.val_images, self.train_images):
            if isinstance(batches, LoaderBatches):
                batches.close()


def _full_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


def _head_forward(model: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    return model.forward_head(feats)


def _worker_init(worker_id: int) -> None:
    import random
    import signal

    import numpy as np

    # Ctrl+C and SIGTERM reach the whole process group; the main process stops the run cleanly
    # after the current batch and then shuts the workers down. A worker dying first fails the run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _labels(table) -> torch.Tensor:
    return torch.tensor(table["label"].to_numpy(), dtype=torch.float32)


def prepare_training_data(
    data: DataSource,
    pre: Preprocess,
    aug: Augment,
    batch_size: int,
    seed: int,
    device: torch.device,
    workers: int | None = None,
    frozen_model: nn.Module | None = None,
    model_name: str = "",
    channels_last: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    budget: int | None = None,
) -> TrainingData:
    """Choose the fastest way to feed this run that fits the memory budget, and say which.

    `progress(what, done, total)` tells of the work before the first step (decoding, features)."""
    train_t, val_t = data.part("train"), data.part("val")
    margin = train_margin(pre, aug)
    need = dataset_bytes(len(train_t), margin) + dataset_bytes(len(val_t), pre.img_size)
    budget = memory_budget() if budget is None else budget
    gen = torch.Generator().manual_seed(seed)
    if need > budget:
        return _streaming(
            train_t,
            val_t,
            pre,
            aug,
            batch_size,
            gen,
            device,
            workers,
            channels_last,
            f"Streaming from disk with DataLoader workers: the decoded images would take "
            f"{need / 2**20:,.0f} MB, above the memory budget of {budget / 2**20:,.0f} MB "
            f"(BINCLS_MEMORY_BUDGET).",
        )
    train_imgs = load_or_decode(train_t["path"].tolist(), margin, _told(progress, "decoding training images"))
    val_imgs = load_or_decode(val_t["path"].tolist(), pre.img_size, _told(progress, "decoding val images"))
    cached = train_imgs.from_cache and val_imgs.from_cache
    where = f"{need / 2**20:,.0f} MB" + (", from the decode cache" if cached else ", decoded once and cached")
    if device.type == "cuda" and need < torch.cuda.mem_get_info(device)[0] // 2:
        store = device  # the whole dataset lives on the GPU: no host-to-device copies per batch
    else:
        store = torch.device("cpu")
        if device.type == "cuda":
            train_imgs.images, val_imgs.images = train_imgs.images.pin_memory(), val_imgs.images.pin_memory()
    tx, vx = train_imgs.images.to(store), val_imgs.images.to(store)
    if channels_last:  # once here, instead of a copy per batch
        tx, vx = (
            tx.contiguous(memory_format=torch.channels_last),
            vx.contiguous(memory_format=torch.channels_last),
        )
    ty, vy = _labels(train_t), _labels(val_t)
    eval_tf = BatchTransform(pre, None)
    if frozen_model is not None and not aug.enabled:
        feats_t, feats_v, mirrored_v, fp32_s = _all_features(
            frozen_model, tx, vx, eval_tf, batch_size, plan_inference(device, model_name), progress)
        return TrainingData(
            TensorBatches(feats_t, ty, batch_size, device, shuffle=True, generator=gen),
            TensorBatches(feats_v, vy, batch_size, device),
            "features",
            f"Frozen backbone, no augmentation: backbone features computed once ({where}); "
            "each epoch trains only the head.",
            _head_forward,
            TensorBatches(vx, vy, batch_size, device, eval_tf, channels_last=channels_last),
            train_features=feats_t, val_views=(feats_v, mirrored_v), fp32_image_s=fp32_s,
        )  # fmt: skip
    note = f"Images decoded in memory ({where})."
    if frozen_model is not None:
        note += (
            " Augmentation is on, so the frozen backbone runs on every batch of every epoch; "
            "turn augmentation off to compute its features once and train in a fraction of the time."
        )
    val = TensorBatches(vx, vy, batch_size, device, eval_tf, channels_last=channels_last)
    return TrainingData(
        TensorBatches(tx, ty, batch_size, device, BatchTransform(pre, aug, gen), True, gen, channels_last),
        val, "memory", note, _full_forward, val,
        TensorBatches(tx, ty, batch_size, device, eval_tf, channels_last=channels_last),
    )  # fmt: skip


def _all_features(model, tx, vx, tf, batch_size, infer, progress) -> tuple:
    """The backbone's features of the training images (in the fastest plan measured, bf16 where it pays),
    and of the validation images as they are and mirrored in fp32, as prediction computes them; one count
    over all three. Also the measured seconds of one image's fp32 pass (a time budget plans with it)."""
    total, told = len(tx) + 2 * len(vx), _told(progress, "computing the backbone's features")
    fp32 = ComputePlan(infer.device, None, infer.channels_last, "fp32, as prediction")
    feats_t = _features(model, tx, tf, batch_size, infer, told and (lambda n: told(n, total)))
    t0 = time.perf_counter()
    feats_v, mirrored_v = (
        _features(model, vx, tf, batch_size, fp32, told and (lambda n, k=k: told(len(tx) + k * len(vx) + n,
                                                                                  total)), mirror=bool(k))
        for k in (0, 1)
    )  # fmt: skip
    fp32_s = (time.perf_counter() - t0) / (2 * len(vx)) if len(vx) else None
    return feats_t, feats_v, mirrored_v, fp32_s


def _told(progress: Callable[[str, int, int], None] | None, what: str) -> Callable[[int, int], None] | None:
    """`progress` for one piece of work, as the (done, total) callback that piece takes."""
    return (lambda done, total: progress(what, done, total)) if progress else None


@torch.no_grad()
def _features(
    model: nn.Module, images: torch.Tensor, tf: BatchTransform, batch_size: int, infer: ComputePlan,
    done: Callable[[int], None] | None = None, mirror: bool = False,
) -> torch.Tensor:  # fmt: skip
    """The backbone's pooled features of `images` (of their mirror images with `mirror`, flipped after the
    transform, as test-time augmentation does); `done(n)` after each batch, with the images so far."""
    model.eval()
    if infer.channels_last:
        model.to(memory_format=torch.channels_last)
    out, n = [], 0
    for x, _ in TensorBatches(
        images, torch.zeros(len(images)), batch_size * 2, infer.device, tf, channels_last=infer.channels_last
    ):
        if mirror:
            x = torch.flip(x, dims=[-1])
        with infer.autocast():
            out.append(model.forward_features(x).float())
        n += len(x)
        if done:
            done(n)
    return torch.cat(out) if out else torch.empty(0)


def _streaming(train_t, val_t, pre, aug, batch_size, gen, device, workers, channels_last, message):
    w = workers if workers is not None else min(4, os.cpu_count() or 1)
    common = {
        "batch_size": batch_size,
        "num_workers": w,
        "pin_memory": device.type == "cuda",
        "persistent_workers": w > 0,
        "worker_init_fn": _worker_init,
    }
    train_ds = ImageFileDataset(train_t, build_train_transform(pre, aug), decode_side=pre.img_size)
    val_ds = ImageFileDataset(val_t, build_eval_transform(pre), decode_side=pre.img_size)
    drop_last = len(train_ds) % batch_size == 1 and len(train_ds) > 1
    val = LoaderBatches(DataLoader(val_ds, shuffle=False, **common), device, channels_last)
    train_eval = ImageFileDataset(train_t, build_eval_transform(pre), decode_side=pre.img_size)
    once = {**common, "persistent_workers": False}  # read once, after training: no workers kept around
    return TrainingData(
        LoaderBatches(
            DataLoader(train_ds, shuffle=True, generator=gen, drop_last=drop_last, **common),
            device,
            channels_last,
        ),
        val, "stream", message + f" {w} workers decode each image every epoch.", _full_forward, val,
        LoaderBatches(DataLoader(train_eval, shuffle=False, **once), device, channels_last),
    )  # fmt: skip


def preview_batch(
    paths: list[str], pre: Preprocess, aug: Augment | None, seed: int, repeat: int = 1
) -> torch.Tensor:
    """A normalized batch made exactly as in-memory training makes it: same decode, size and batch transform.

    `repeat` > 1 gives that many random views of each image (the augmentation preview).
    """
    side = train_margin(pre, aug) if aug is not None and aug.enabled else pre.img_size
    images = decode_images(paths, side)
    if repeat > 1:
        images = images.repeat_interleave(repeat, dim=0)
    return BatchTransform(pre, aug, torch.Generator().manual_seed(seed))(images)
