"""Train and eval presets, normalization and its inverse, and the Dataset that uses them."""

from __future__ import annotations

import imagefactory as fac
import numpy as np
import pytest
import torch
from PIL import Image

from bincls.data.dataset import ImageFileDataset, load_data
from bincls.data.images import load_rgb
from bincls.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Augment,
    Preprocess,
    build_eval_transform,
    build_train_transform,
    denormalize,
    eval_tensor,
)

PRE = Preprocess(img_size=32)


@pytest.mark.parametrize("size", [(50, 30), (30, 50), (32, 32), (7, 300)])
def test_eval_transform_shape_and_dtype(size):
    x = build_eval_transform(PRE)(fac.rgb_image(*size))
    assert x.shape == (3, 32, 32)
    assert x.dtype == torch.float32


def test_eval_transform_normalizes_with_the_preset_stats():
    colour = (200, 100, 30)
    for pre in (PRE, Preprocess(16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))):
        x = build_eval_transform(pre)(Image.new("RGB", (40, 20), colour))
        expected = (torch.tensor(colour) / 255 - torch.tensor(pre.mean)) / torch.tensor(pre.std)
        torch.testing.assert_close(x.mean(dim=(1, 2)), expected.float(), atol=1e-5, rtol=0)
        torch.testing.assert_close(x.std(dim=(1, 2)), torch.zeros(3), atol=1e-5, rtol=0)


def test_eval_transform_is_deterministic():
    img = fac.rgb_image(40, 30)
    t = build_eval_transform(PRE)
    assert torch.equal(t(img), t(img))


def test_train_transform_is_random_with_the_same_shape():
    img = fac.rgb_image(64, 48, seed=3)
    t = build_train_transform(PRE)
    torch.manual_seed(0)
    outs = [t(img) for _ in range(4)]
    assert all(o.shape == (3, 32, 32) and o.dtype == torch.float32 for o in outs)
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    torch.manual_seed(0)
    assert torch.equal(t(img), outs[0])  # random, but reproducible from the seed


def test_train_transform_without_augmentation_equals_eval():
    img = fac.rgb_image(64, 48, seed=4)
    assert not Augment.none().enabled and Augment().enabled
    plain = build_train_transform(PRE, Augment.none())
    torch.testing.assert_close(plain(img), build_eval_transform(PRE)(img))


@pytest.mark.parametrize("shape", [(3, 8, 8), (5, 3, 8, 8)])
def test_denormalize_inverts_normalize(shape):
    x = torch.rand(shape)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    back = denormalize((x - mean) / std, PRE)
    torch.testing.assert_close(back, x, atol=1e-6, rtol=0)


def test_denormalize_of_the_eval_transform_gives_the_image_back():
    arr = np.zeros((32, 32, 3), np.uint8)
    arr[:16] = (255, 128, 0)
    arr[16:] = (10, 20, 250)
    x = build_eval_transform(PRE)(Image.fromarray(arr))
    back = denormalize(x, PRE).permute(1, 2, 0).numpy() * 255
    np.testing.assert_allclose(back, arr, atol=0.5)


def test_dataset_reads_items_like_load_rgb(sample_dir):
    data = load_data([sample_dir])
    table = data.part("val")
    ds = ImageFileDataset(table, build_eval_transform(PRE))
    assert len(ds) == len(table)
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and y.dtype == torch.float32
    assert float(y) == table["label"][0]
    torch.testing.assert_close(x, build_eval_transform(PRE)(load_rgb(table["path"][0])))
    labels = sorted({float(ds[i][1]) for i in range(len(ds))})
    assert labels == [0.0, 1.0]


def test_dataset_transparent_png_is_on_white(tmp_path):
    fac.rgba_half_transparent(tmp_path / "a" / "x.png", size=(32, 32), colour=(0, 0, 255))
    fac.make_folder(tmp_path / "a", 3, seed=10)
    fac.make_folder(tmp_path / "b", 3, seed=20)
    table = load_data([tmp_path]).split
    ds = ImageFileDataset(table[table["path"].str.endswith("x.png")], build_eval_transform(PRE))
    x, _ = ds[0]
    left = denormalize(x, PRE)[:, :, :8]
    torch.testing.assert_close(left, torch.ones_like(left), atol=1e-5, rtol=0)


def test_the_servers_eval_tensor_is_the_eval_transform_bit_for_bit():
    """`bincls serve` calls the kernels directly on channels-last pixels; training and `bincls predict`
    use the v2 pipeline on a PIL image: both must make the same tensor, whatever the image's size."""
    rng = np.random.default_rng(0)
    pre = Preprocess(img_size=64, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    for h, w in [(1, 1), (3, 500), (375, 500), (64, 64), (1000, 7), (225, 223), (40, 41)]:
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        expected = build_eval_transform(pre)(Image.fromarray(pixels))
        assert torch.equal(eval_tensor(pixels, pre), expected), (h, w)
        read_only = np.asarray(Image.fromarray(pixels))  # as decoded: PIL's arrays cannot be written
        assert not read_only.flags.writeable and torch.equal(eval_tensor(read_only, pre), expected)
