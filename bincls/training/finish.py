"""After the last epoch: calibrate the best model on the validation split and write it into best.pt.

What is fitted here travels in the checkpoint, so every consumer (CLI, API, app, export, server) gives
the same answer: the temperature, the decision threshold, and whether mirror-image test-time
augmentation helps. The validation images go through the model exactly as prediction will send them
(whole images, fp32), not through cached features.
"""

from __future__ import annotations

import time

import torch

from bincls.compute import ComputePlan
from bincls.inference.calibration import (
    balanced_accuracy,
    calibration_error,
    choose_threshold,
    fit_calibration,
    nll,
)
from bincls.inference.logits import predict_logits
from bincls.inference.ood import fit_detector
from bincls.training.distributed import gather
from bincls.training.state import TrainingState

# Mirror-image TTA doubles the cost of every prediction: it is kept only when it lowers the
# validation log-loss by at least this share.
TTA_GAIN = 0.02
# Fewer validation images than this (or of one class than MIN_PER_CLASS) cannot place a threshold or a
# temperature reliably: the model keeps 0.5 and 1.0, and the run says why.
MIN_VAL_IMAGES, MIN_PER_CLASS = 30, 5


_FP32 = "fp32, as prediction"


def _val_logits(state: TrainingState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits of the validation images, as they are and mirrored, and their labels (all processes)."""
    plan = ComputePlan(state.device, None, False, _FP32)
    batches = state.feed.val_images
    plain, labels = predict_logits(state.model, batches, plan)
    mirrored, _ = predict_logits(state.model, batches, plan, lambda m, x: m(torch.flip(x, dims=[-1])))
    return gather(state.world, plain, mirrored, labels)


@torch.no_grad()
def _features(state: TrainingState, batches, tta: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features [N, D] and labels, as the Scorer makes them (fp32; mirrored and averaged with TTA)."""
    model, feats, labels = state.model.eval(), [], []
    for x, y in batches:
        f = model.forward_features(x.to(state.device).float())
        if tta:
            f = (f + model.forward_features(torch.flip(x.to(state.device).float(), dims=[-1]))) / 2
        feats.append(f.float().cpu())
        labels.append(y.cpu().view(-1))
    return torch.cat(feats), torch.cat(labels)


def fit_ood(state: TrainingState, tta: bool) -> dict | None:
    """The out-of-distribution detector of the finished model, as checkpoint state (None without
    pooled features to look at)."""
    if not hasattr(state.model, "forward_features"):
        return None
    feed = state.feed
    if feed.train_features is not None:
        train_feats = feed.train_features.cpu()
        train_labels = feed.train.y.cpu()
    else:
        train_feats, train_labels = _features(state, feed.train_images, False)
    val_feats, _ = _features(state, feed.val_images, tta)
    train_feats, train_labels, val_feats = gather(state.world, train_feats, train_labels, val_feats)
    return fit_detector(train_feats, train_labels, val_feats).state()


def finish_model(state: TrainingState) -> dict:
    """Fit temperature, threshold and TTA on validation; rewrite best.pt with them; return the summary."""
    t0 = time.perf_counter()
    state.emit("message", "calibrating the best model on the validation images")
    plain, mirrored, labels = _val_logits(state)
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
    ood = fit_ood(state, bool(tta))
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
        f"calibrated on {summary['val_images']} validation images: temperature {temperature:.2f}, bias "
        f"{bias:+.2f}, "
        f"threshold {threshold:.3f} (balanced accuracy {summary['val_balanced_accuracy']:.3f}), "
        f"mirror-image TTA {'on' if tta else 'off'}, calibration error {summary['val_ece_uncalibrated']:.3f} "
        f"-> {summary['val_ece']:.3f}"
        + ("; an out-of-distribution detector flags images unlike the training ones" if ood else "")
    ))  # fmt: skip
    return summary
