"""A shuffling batch sampler whose place in the data order can be saved and restored exactly.

The trainer keeps, per epoch, the state of the data generator before the epoch's permutation
and the number of batches already consumed; restoring both replays the same batches from there.
"""

from __future__ import annotations

import numpy as np

from ..data import Sampler
from ..random import Generator


class ResumableBatchSampler(Sampler):
    """Batches of indices of range(n): a fresh permutation from `generator` each epoch (or 0..n-1 in order
    when shuffle=False). `skip(k)` makes the next epoch start at its k-th batch without fetching the first k.

    ember-specific: torch's samplers have no resumable position."""

    def __init__(self, n: int, batch_size: int, generator: Generator, shuffle: bool = True,
                 drop_last: bool = True):
        if n <= 0:
            raise ValueError("ResumableBatchSampler: the dataset is empty")
        if drop_last and n < batch_size:
            raise ValueError(f"ResumableBatchSampler: batch_size {batch_size} is larger than the dataset "
                             f"({n} samples); use a smaller batch size")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.shuffle, self.drop_last = shuffle, drop_last
        self._skip = 0

    def skip(self, k: int) -> None:
        """Start the next epoch at batch k (used when resuming mid-epoch)."""
        self._skip = int(k)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        order = self.generator.permutation(self.n) if self.shuffle else np.arange(self.n)
        start, self._skip = self._skip, 0
        for b in range(start, len(self)):
            yield order[b * self.batch_size:(b + 1) * self.batch_size].tolist()
