"""Image transforms for data preparation (torchvision.transforms names), computed with NumPy.

Images come in as NumPy arrays in image layout, (H, W) or (H, W, C) uint8 (what the dataset readers
return), or as ember tensors in (..., C, H, W) layout (what ToTensor returns). Random transforms draw
from ember's default generator, so `ember.manual_seed` reproduces them (and the DataLoader gives each
batch its own stream).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .. import dtype as dt
from ..errors import ShapeError
from ..random import _gen
from ..tensor import Tensor


def _to_numpy(img) -> tuple[np.ndarray, bool]:
    """The image as an array and whether it was an ember tensor (then it is (..., C, H, W))."""
    if isinstance(img, Tensor):
        return img.detach().numpy(), True
    return np.asarray(img), False


def _back(arr: np.ndarray, was_tensor: bool):
    if not was_tensor:
        return arr
    return Tensor._make(np.ascontiguousarray(arr), dt.from_numpy_dtype(arr.dtype))


def _hw_axes(arr: np.ndarray, is_tensor: bool, name: str) -> tuple[int, int]:
    if is_tensor:
        if arr.ndim < 2:
            raise ShapeError(f"{name}: tensor image of shape {arr.shape} needs at least 2 dims (..., H, W)")
        return arr.ndim - 2, arr.ndim - 1
    if arr.ndim not in (2, 3):
        raise ShapeError(f"{name}: array image of shape {arr.shape} must be (H, W) or (H, W, C)")
    return 0, 1


class Compose:
    """Apply transforms one after the other."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class ToTensor:
    """(H, W) or (H, W, C) image -> float32 tensor (C, H, W); uint8 values are scaled to [0, 1]."""

    def __call__(self, img) -> Tensor:
        arr = np.asarray(img.detach().numpy() if isinstance(img, Tensor) else img)
        if arr.ndim == 2:
            arr = arr[None]
        elif arr.ndim == 3:
            arr = arr.transpose(2, 0, 1)
        else:
            raise ShapeError(f"ToTensor: image of shape {arr.shape} must be (H, W) or (H, W, C)")
        if arr.dtype == np.uint8:
            out = arr.astype(np.float32) / np.float32(255)  # divide, not multiply: matches torch bit for bit
        else:
            out = arr.astype(np.float32)
        return Tensor._make(np.ascontiguousarray(out), dt.float32)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """(x - mean[c]) / std[c] per channel of a float tensor (..., C, H, W)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if (self.std == 0).any():
            raise ValueError(f"Normalize: std {list(self.std)} has a zero, which would divide by zero")
        self.inplace = inplace

    def __call__(self, img: Tensor) -> Tensor:
        if not isinstance(img, Tensor) or not img.dtype.is_floating_point:
            got = img.dtype if isinstance(img, Tensor) else type(img).__name__
            raise TypeError(f"Normalize: expected a floating tensor (..., C, H, W), got {got}. Hint: put "
                            "ToTensor() before Normalize")
        if img.ndim < 3:
            raise ShapeError(f"Normalize: tensor of shape {tuple(img.shape)} must be (..., C, H, W)")
        c = img.shape[-3]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, c):
                raise ShapeError(f"Normalize: {name} has {v.size} values but the image has {c} channels")
        arr = img.detach().numpy()
        mean = self.mean.astype(arr.dtype).reshape(-1, 1, 1)
        std = self.std.astype(arr.dtype).reshape(-1, 1, 1)
        if self.inplace:
            arr -= mean
            arr /= std
            return img
        return Tensor._make((arr - mean) / std, img.dtype)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop:
    """Crop a random `size` (h, w) window, after padding each border by `padding` pixels
    (int, (lr, tb) or (l, t, r, b)) with `fill` (padding_mode 'constant', 'edge', 'reflect' or
    'symmetric')."""

    def __init__(self, size: int | Sequence[int], padding=None, pad_if_needed: bool = False, fill=0,
                 padding_mode: str = "constant"):
        self.size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        if padding is None:
            pad = (0, 0, 0, 0)
        elif isinstance(padding, int):
            pad = (padding,) * 4
        elif len(padding) == 2:
            pad = (padding[0], padding[1], padding[0], padding[1])
        elif len(padding) == 4:
            pad = tuple(padding)
        else:
            raise ValueError(f"RandomCrop: padding must be an int or 2 or 4 ints, got {padding!r}")
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(f"RandomCrop: padding_mode {padding_mode!r} is not one of 'constant', 'edge', "
                             "'reflect', 'symmetric'")
        self.padding = pad  # left, top, right, bottom
        self.pad_if_needed, self.fill, self.padding_mode = pad_if_needed, fill, padding_mode

    def _pad(self, arr, ax, left, top, right, bottom):
        if not any((left, top, right, bottom)):
            return arr
        widths = [(0, 0)] * arr.ndim
        widths[ax[0]], widths[ax[1]] = (top, bottom), (left, right)
        if self.padding_mode == "constant":
            return np.pad(arr, widths, mode="constant", constant_values=self.fill)
        return np.pad(arr, widths, mode=self.padding_mode)

    def __call__(self, img):
        arr, is_tensor = _to_numpy(img)
        ax = _hw_axes(arr, is_tensor, "RandomCrop")
        arr = self._pad(arr, ax, *self.padding)
        th, tw = self.size
        h, w = arr.shape[ax[0]], arr.shape[ax[1]]
        if self.pad_if_needed and (h < th or w < tw):
            arr = self._pad(arr, ax, max(0, tw - w), max(0, th - h), max(0, tw - w), max(0, th - h))
            h, w = arr.shape[ax[0]], arr.shape[ax[1]]
        if h < th or w < tw:
            raise ShapeError(f"RandomCrop: crop size {(th, tw)} is larger than the (padded) image {(h, w)}. "
                             "Hint: pass padding= or pad_if_needed=True")
        g = _gen(None)
        i = int(g.integers(0, h - th + 1, ()))
        j = int(g.integers(0, w - tw + 1, ()))
        index = [slice(None)] * arr.ndim
        index[ax[0]], index[ax[1]] = slice(i, i + th), slice(j, j + tw)
        return _back(arr[tuple(index)], is_tensor)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability p."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, img):
        if float(_gen(None).uniform(())) >= self.p:
            return img
        arr, is_tensor = _to_numpy(img)
        ax = _hw_axes(arr, is_tensor, "RandomHorizontalFlip")
        return _back(np.flip(arr, axis=ax[1]), is_tensor)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Lambda:
    """Wrap a function as a transform."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, img):
        return self.fn(img)
