"""After the last epoch: calibrate the best model on the validation split and write it into best.pt.

What is fitted here travels in the checkpoint, so every consumer (CLI, API, app, export, server) gives
the same answer: the temperature, the decision threshold, whether mirror-image test-time augmentation
helps, and the out-of-distribution detector. The validation images are seen as prediction sees them
(whole images, fp32), as they are and mirrored, once: the logits, the choice of TTA and the detector all
come from that one pass. With a frozen backbone the features phase computed those views already, and
only the head runs here.
"""

from __future__ import annotations

import time

import torch

from bincls.compute import plan_inference
from bincls.inference.calibration import (
    balanced_accuracy,
    calibration_error,
    choose_threshold,
    fit_calibration,
    nll,
)
from bincls.inference.ood import fit_detector
from bincls.training.budget import OOD_TRAIN_IMAGES
from bincls.training.distributed import gather
from bincls.training.state import TrainingState

# Mirror-image TTA doubles the cost of every prediction: it is kept only when it lowers the
# validation log-loss by at least this share.
TTA_GAIN = 0.02
# Fewer validation images than this (or of one class than MIN_PER_CLASS) cannot place a threshold or a
# temperature reliably: the model keeps 0.5 and 1.0, and the run says why.
MIN_VAL_IMAGES, MIN_PER_CLASS = 30, 5
CALIBRATING = "calibrating on the validation images"


@torch.no_grad()
def _val_views(state: TrainingState) -> dict[str, torch.Tensor | None]:
    """The validation images' logits as they are and mirrored, their pooled features (None for a model
    without them) and labels, gathered over all processes."""
    model, feed = state.model.eval(), state.calibration_feed
    pooled = hasattr(model, "forward_features")
    if feed.val_views is not None and pooled:
        plain_f, mirrored_f = (f.to(state.device) for f in feed.val_views)
        labels = feed.val.y.view(-1)
    else:
        plain_f, mirrored_f, labels = _computed_views(state)
    if pooled:
        plain, mirrored = (model.forward_head(f).float().reshape(-1).cpu() for f in (plain_f, mirrored_f))
        plain_f, mirrored_f = plain_f.float().cpu(), mirrored_f.float().cpu()
    else:  # the "features" are the logits themselves
        plain, mirrored, plain_f, mirrored_f = plain_f.cpu(), mirrored_f.cpu(), None, None
    views = {"plain": plain, "mirrored": mirrored, "labels": labels.float().cpu(),
             "features": plain_f, "mirrored_features": mirrored_f}  # fmt: skip
    present = {k: v for k, v in views.items() if v is not None}
    return dict(zip(present, gather(state.world, *present.values()))) | {
        k: None for k, v in views.items() if v is None
    }


def _computed_views(state: TrainingState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One fp32 pass over the validation images, each with its mirror image in the same batch."""
    model, batches = state.model, state.feed.val_images
    pooled = hasattr(model, "forward_features")
    run = model.forward_features if pooled else model
    plain, mirrored, labels, done = [], [], [], 0
    for x, y in batches:
        x = x.to(state.device).float()
        out = run(torch.cat([x, torch.flip(x, dims=[-1])])).float()
        n = x.shape[0]
        plain.append(out[:n] if pooled else out[:n].reshape(-1))
        mirrored.append(out[n:] if pooled else out[n:].reshape(-1))
        labels.append(y.view(-1).cpu())
        done += n
        state.emit("preparing", CALIBRATING, done, batches.n_items)
    return torch.cat(plain), torch.cat(mirrored), torch.cat(labels)


@torch.no_grad()
def _train_features(state: TrainingState) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features of (at most OOD_TRAIN_IMAGES of) the training images for the detector: the cached
    ones of a frozen backbone, else computed in the fastest inference plan (the detector's threshold is
    placed on the fp32 validation features, as prediction computes them)."""
    feed = state.calibration_feed
    if feed.train_features is not None:
        return feed.train_features.cpu(), feed.train.y.cpu()
    batches = feed.train_images.sample(OOD_TRAIN_IMAGES, state.cfg.seed)
    plan, model = plan_inference(state.device, state.cfg.model), state.model.eval()
    feats, labels = [], []
    for x, y in batches:
        with plan.autocast():
            feats.append(model.forward_features(x.to(state.device)).float().cpu())
        labels.append(y.view(-1).cpu())
        state.emit("preparing", "fitting the detector on the training images",
                   sum(len(f) for f in feats), batches.n_items)  # fmt: skip
    return torch.cat(feats), torch.cat(labels)


def fit_ood(state: TrainingState, val_features: torch.Tensor | None) -> dict | None:
    """The out-of-distribution detector of the finished model, as checkpoint state (None without pooled
    features to look at)."""
    if val_features is None:
        return None
    train_feats, train_labels = gather(state.world, *_train_features(state))
    return fit_detector(train_feats, train_labels, val_features).state()


def finish_model(state: TrainingState) -> dict:
    """Fit temperature, threshold and TTA on validation; rewrite best.pt with them; return the summary."""
    t0 = time.perf_counter()
    state.emit("message", "calibrating the best model on the validation images")
    state.emit("preparing", CALIBRATING, 0, state.feed.val.n_items)
    views = _val_views(state)
    plain, mirrored, labels = views["plain"], views["mirrored"], views["labels"]
    n_pos = int(labels.sum())
    if labels.numel() < MIN_VAL_IMAGES or min(n_pos, labels.numel() - n_pos) < MIN_PER_CLASS:
        state.emit("message", f"not calibrated: {labels.numel()} validation images ({n_pos} of the second "
                              f"class) are too few to place a threshold (at least {MIN_VAL_IMAGES}, "
                              f"{MIN_PER_CLASS} of each class); the threshold stays 0.5")  # fmt: skip
        return {}
    both = (plain + mirrored) / 2
    fits = {"plain": fit_calibration(plain, labels), "tta": fit_calibration(both, labels)}
    tta = nll(both, labels, *fits["tta"]) < (1 - TTA_GAIN) * nll(plain, labels, *fits["plain"])
    logits, (temperature, bias) = (both, fits["tta"]) if tta else (plain, fits["plain"])
    probs = torch.sigmoid(logits / temperature + bias)
    y = labels.numpy().astype(int)
    threshold = choose_threshold(probs.numpy(), y)
    summary = {
        "temperature": temperature,
        "logit_bias": bias,
        "threshold": threshold,
        "tta": bool(tta),
        "val_images": int(labels.numel()),
        "val_ece_uncalibrated": calibration_error(torch.sigmoid(logits), labels),
        "val_ece": calibration_error(probs, labels),
        "val_balanced_accuracy": balanced_accuracy(probs.numpy(), y, threshold),
    }
    val_features = views["features"]
    if tta and val_features is not None:
        val_features = (val_features + views["mirrored_features"]) / 2
    ood = fit_ood(state, val_features)
    if ood is not None:
        summary["ood_threshold"], summary["ood_false_flag_rate"] = ood["threshold"], ood["false_flag_rate"]
    summary["seconds"] = time.perf_counter() - t0
    state.saver.save("best.pt", lambda: state.best.checkpoint(
        state, threshold=threshold, temperature=temperature, logit_bias=bias, tta=bool(tta),
        calibration=summary, ood=ood,
    ))  # fmt: skip
    if state.run is not None:
        state.run.set_status(calibration=summary)
    state.emit("message", (
        f"calibrated on {summary['val_images']} validation images in {summary['seconds']:.1f} s: temperature "
        f"{temperature:.2f}, bias {bias:+.2f}, "
        f"threshold {threshold:.3f} (balanced accuracy {summary['val_balanced_accuracy']:.3f}), "
        f"mirror-image TTA {'on' if tta else 'off'}, calibration error {summary['val_ece_uncalibrated']:.3f} "
        f"-> {summary['val_ece']:.3f}"
        + ("; an out-of-distribution detector flags images unlike the training ones" if ood else "")
    ))  # fmt: skip
    return summary
