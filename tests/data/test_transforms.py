"""Transforms: ToTensor / Normalize against torch's arithmetic, and the random ones reproducible
through ember.manual_seed."""

import numpy as np
import pytest
import torch

import ember
from ember.data import transforms as T


def test_to_tensor_hw_and_hwc_uint8():
    rng = np.random.default_rng(0)
    hw = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    hwc = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    a, b = T.ToTensor()(hw), T.ToTensor()(hwc)
    assert a.shape == (1, 5, 7) and b.shape == (3, 5, 7) and a.dtype is ember.float32
    want = torch.from_numpy(hwc).permute(2, 0, 1).float().div(255)  # torchvision's formula
    np.testing.assert_array_equal(b.numpy(), want.numpy())
    assert a.numpy().max() <= 1.0 and a.numpy().min() >= 0.0
    f = T.ToTensor()(np.full((2, 2), 3.5, np.float32))
    assert f.numpy().max() == 3.5  # floats are not rescaled


def test_normalize_matches_torch():
    x = np.random.default_rng(1).random((3, 4, 5)).astype(np.float32)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    out = T.Normalize(mean, std)(ember.from_numpy(x.copy()))
    want = (torch.from_numpy(x) - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-6, atol=1e-7)
    with pytest.raises(ember.ShapeError, match="2 values but the image has 3 channels"):
        T.Normalize([0.1, 0.2], [1.0, 1.0])(ember.from_numpy(x))
    with pytest.raises(TypeError, match="ToTensor"):
        T.Normalize([0.5], [0.5])(np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="zero"):
        T.Normalize([0.5], [0.0])


def test_random_crop_with_padding_is_a_window_of_the_padded_image():
    img = np.arange(3 * 6 * 6, dtype=np.float32).reshape(3, 6, 6)
    padded = np.pad(img, ((0, 0), (2, 2), (2, 2)))
    crop = T.RandomCrop(6, padding=2)
    offsets = set()
    for _ in range(30):
        out = crop(ember.from_numpy(img)).numpy()
        assert out.shape == (3, 6, 6)
        hits = [(i, j) for i in range(5) for j in range(5)
                if np.array_equal(padded[:, i:i + 6, j:j + 6], out)]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 5  # the offset really is random
    hwc = np.zeros((8, 8, 3), np.uint8)
    assert T.RandomCrop((4, 5))(hwc).shape == (4, 5, 3)  # arrays are (H, W, C)
    with pytest.raises(ember.ShapeError, match="pad_if_needed"):
        T.RandomCrop(10)(hwc)
    assert T.RandomCrop(10, pad_if_needed=True)(hwc).shape == (10, 10, 3)


def test_random_horizontal_flip():
    img = ember.from_numpy(np.arange(12, dtype=np.float32).reshape(1, 3, 4))
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(img).numpy(),
                                  torch.flip(torch.from_numpy(img.numpy()), dims=[-1]).numpy())
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(img).numpy(), img.numpy())
    flips = sum(not np.array_equal(T.RandomHorizontalFlip(0.5)(img).numpy(), img.numpy()) for _ in range(200))
    assert 70 < flips < 130


def test_random_transforms_reproduce_under_manual_seed():
    pipeline = T.Compose([T.ToTensor(), T.RandomCrop(24, padding=4), T.RandomHorizontalFlip(),
                          T.Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])])
    img = np.random.default_rng(2).integers(0, 256, (28, 28, 3), dtype=np.uint8)

    def run(seed):
        ember.manual_seed(seed)
        return [pipeline(img).numpy() for _ in range(6)]

    a, b, c = run(11), run(11), run(12)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    assert a[0].shape == (3, 24, 24)
