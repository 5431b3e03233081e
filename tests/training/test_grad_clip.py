"""--grad-clip: the step's gradients have at most that global norm (mixed precision's scale taken out)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bincls.training.config import TrainConfig
from bincls.training.loop import _step


def _one_step(clip: float) -> float:
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # plain SGD: the update is the gradient
    state = SimpleNamespace(cfg=TrainConfig(data=["x"], grad_clip=clip), optimizer=optimizer, scheduler=None,
                            global_step=0, scaler=torch.amp.GradScaler("cpu", enabled=False))  # fmt: skip
    loss = (model(torch.randn(16, 8) * 100) ** 2).mean()  # a large gradient
    _step(state, loss)
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
    return float(moved.norm())


def test_the_gradient_norm_is_clipped_to_the_setting_and_untouched_without_it():
    assert _one_step(0.0) > 100
    assert _one_step(0.5) == pytest.approx(0.5, rel=1e-4)


def test_the_setting_is_checked_like_every_other():
    from bincls.errors import BinclsError

    with pytest.raises(BinclsError, match="grad_clip"):
        TrainConfig(data=["x"], grad_clip=-1.0).validate()
