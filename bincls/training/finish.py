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
    fit_temperature,
    nll,
)
from bincls.inference.logits import predict_logits
from bincls.training.distributed import gather
from bincls.training.setup import TrainingState

# Mirror-image TTA doubles the cost of every prediction: it is kept only when it lowers the
# validation log-loss by at least this share.
TTA_GAIN = 0.02
# Fewer validation images than this (or of one class than MIN_PER_CLASS) cannot place a threshold or a
# temperature reliably: the model keeps 0.5 and 1.0, and the run says why.
MIN_VAL_IMAGES, MIN_PER_CLASS = 30, 5


def _val_logits(state: TrainingState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits of the validation images, as they are and mirrored, and their labels (all processes)."""
    plan = ComputePlan(state.device, None, False, "fp32, as prediction")
    batches = state.feed.val_images
    plain, labels = predict_logits(state.model, batches, plan)
    mirrored, _ = predict_logits(state.model, batches, plan, lambda m, x: m(torch.flip(x, dims=[-1])))
    return gather(state.world, plain, mirrored, labels)


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
    t_plain, t_both = fit_temperature(plain, labels), fit_temperature(both, labels)
    tta = nll(both, labels, t_both) < (1 - TTA_GAIN) * nll(plain, labels, t_plain)
    logits, temperature = (both, t_both) if tta else (plain, t_plain)
    probs = torch.sigmoid(logits / temperature)
    y = labels.numpy().astype(int)
    threshold = choose_threshold(probs.numpy(), y)
    summary = {
        "temperature": temperature,
        "threshold": threshold,
        "tta": bool(tta),
        "val_images": int(labels.numel()),
        "val_ece_uncalibrated": calibration_error(torch.sigmoid(logits), labels),
        "val_ece": calibration_error(probs, labels),
        "val_balanced_accuracy": balanced_accuracy(probs.numpy(), y, threshold),
        "val_balanced_accuracy_at_0.5": balanced_accuracy(probs.numpy(), y, 0.5),
        "seconds": time.perf_counter() - t0,
    }
    state.save("best.pt", lambda: state.best.checkpoint(
        state, threshold=threshold, temperature=temperature, tta=bool(tta), calibration=summary,
    ))  # fmt: skip
    if state.run is not None:
        state.run.set_status(calibration=summary)
    state.emit("message", (
        f"calibrated on {summary['val_images']} validation images: temperature {temperature:.2f}, "
        f"threshold {threshold:.3f} (balanced accuracy {summary['val_balanced_accuracy']:.3f}), "
        f"mirror-image TTA {'on' if tta else 'off'}, calibration error {summary['val_ece_uncalibrated']:.3f} "
        f"-> {summary['val_ece']:.3f}"
    ))  # fmt: skip
    return summary
