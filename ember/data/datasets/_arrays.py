"""The part MNIST and CIFAR-10 share: images and labels held as two NumPy arrays."""

from __future__ import annotations

import numpy as np

from ... import dtype as dt
from ...tensor import Tensor
from ..dataset import Dataset


class ArrayImageDataset(Dataset):
    """A dataset over `self._images` (uint8) and `self._labels` (int64), set by the subclass.

    Samples are (image, label) after the optional transform / target_transform; `_gather` hands the
    DataLoader a whole batch in one NumPy index when there is no per-sample transform."""

    transform = None
    target_transform = None

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int):
        img, target = self._images[index], int(self._labels[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def _gather(self, indices):
        """Batch fast path for the DataLoader: only without transforms (they work per sample)."""
        if self.transform is not None or self.target_transform is not None:
            return None
        idx = np.asarray(indices, dtype=np.int64)
        return [Tensor._make(self._images[idx], dt.uint8), Tensor._make(self._labels[idx], dt.int64)]
