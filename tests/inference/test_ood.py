"""Out-of-distribution detection: the k-NN detector, its calibration, and "unlike the training images"."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from bincls.inference.ood import MahalanobisDetector, fit_detector, load_detector
from bincls.paths import PROJECT_ROOT


def test_the_detector_is_calibrated_on_validation_and_flags_what_is_far():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(2, 64, generator=g)

    def near(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 2, (n,), generator=g)
        return centres[labels] + 0.3 * torch.randn(n, 64, generator=g), labels

    (train, labels), (val, _), (test, _) = near(500), near(400), near(400)
    det = fit_detector(train, labels, val, false_flag_rate=0.05)
    with torch.no_grad():
        assert (det(val) > det.threshold).float().mean() == pytest.approx(0.05, abs=0.01)
        assert (det(test) > det.threshold).float().mean() < 0.1
        far = torch.randn(100, 64, generator=g)  # other directions altogether
        assert (det(far) > det.threshold).float().mean() > 0.95
    again = load_detector(det.state())
    assert isinstance(again, MahalanobisDetector) and again.threshold == det.threshold
    assert torch.allclose(again(far), det(far), atol=1e-5)
    assert load_detector(None) is None and load_detector({"kind": "unknown"}) is None


@pytest.mark.slow
def test_a_model_of_insects_says_faces_are_unlike_its_training_images(hymenoptera, face_mask, imagenet_hub,
                                                                       tmp_path):  # fmt: skip
    def bincls(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "bincls", *args], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, check=True).stdout  # fmt: skip

    out = bincls("train", str(hymenoptera), "--runs-dir", str(tmp_path / "runs"))
    run = out.strip().splitlines()[-1]
    faces = tmp_path / "faces"
    shutil.copytree(face_mask / "with_mask", faces)
    preds = json.loads(bincls("predict", f"{run}/best.pt", str(faces), str(hymenoptera / "val"), "--json"))
    ok = [p for p in preds if p["error"] is None]
    face = [p for p in ok if str(faces) in p["source"]]
    insects = [p for p in ok if str(hymenoptera) in p["source"]]
    assert all(isinstance(p["ood"], bool) and p["ood_score"] is not None for p in ok)
    assert sum(p["ood"] for p in face) / len(face) >= 0.8
    assert sum(p["ood"] for p in insects) / len(insects) <= 0.1
