"""The ONNX preprocessing graph gives the eval transform's tensor bit for bit: real photos, odd sizes."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from bincls.data.images import load_rgb
from bincls.data.transforms import Preprocess, build_eval_transform
from bincls.inference.onnx_preprocess import preprocess_model
from bincls.models.config import SCRATCH_MEAN, SCRATCH_STD
from bincls.paths import SAMPLE_DATA


def graph(pre: Preprocess, batched: bool = False) -> ort.InferenceSession:
    model = preprocess_model(pre, opset=20, ir_version=10, batched=batched)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def expected(pre: Preprocess, pixels: np.ndarray) -> np.ndarray:
    return build_eval_transform(pre)(Image.fromarray(pixels)).unsqueeze(0).numpy()


@pytest.mark.parametrize("side", [224, 48])
def test_real_photos_give_the_eval_transform_bit_for_bit(side):
    """torch's uint8 resize rounds in fixed point (ONNX's own Resize is one level off on ~0.3% of values)."""
    pre = Preprocess(side)
    sess = graph(pre)
    files = sorted(SAMPLE_DATA.rglob("*.jpg"))[::3]  # 20 real photos, 500x375-ish, both classes
    for f in files:
        pixels = np.asarray(load_rgb(f))
        got = sess.run(None, {"image": pixels})[0]
        assert got.dtype == np.float32 and got.shape == (1, 3, side, side)
        np.testing.assert_array_equal(got, expected(pre, pixels), err_msg=str(f))


@pytest.mark.parametrize(
    "shape", [(1, 1), (7, 300), (48, 48), (48, 49), (47, 240), (300, 2), (33, 31), (1000, 90)]
)
def test_odd_sizes_up_and_down_give_the_eval_transform_bit_for_bit(shape):
    """Upscaling, one-pixel images, the model's own size (no resize), very skinny and very large ratios."""
    pre = Preprocess(48, SCRATCH_MEAN, SCRATCH_STD)
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    np.testing.assert_array_equal(graph(pre).run(None, {"image": pixels})[0], expected(pre, pixels))


def test_batched_graph_takes_n_images_of_one_size():
    pre = Preprocess(32)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 90, 120, 3), dtype=np.uint8)
    got = graph(pre, batched=True).run(None, {"image": pixels})[0]
    assert got.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(got, np.concatenate([expected(pre, p) for p in pixels]))
