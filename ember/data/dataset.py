"""Datasets: indexable (map-style) and iterable sources of samples, plus ways to combine them.

This is the bottom of `ember.data`: samplers choose indices into a Dataset, the DataLoader
fetches and collates them. Names and semantics follow torch.utils.data.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence

import numpy as np

from ..random import Generator, _gen
from ..tensor import Tensor


class Dataset:
    """A map-style dataset: `len(ds)` samples, `ds[i]` returns sample i.

    Subclasses implement `__getitem__` (and `__len__` for samplers that need it)."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: implement `__iter__`. With `num_workers > 0` every worker iterates its own
    copy; shard the stream inside `__iter__` with `ember.data.get_worker_info()`."""

    def __iter__(self) -> Iterator:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __add__(self, other):
        return ChainDataset([self, other])


class ChainDataset(IterableDataset):
    """Iterable datasets read one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)

    def __iter__(self):
        for d in self.datasets:
            yield from d


def _as_numpy(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


class TensorDataset(Dataset):
    """Samples are rows of tensors that share their first dimension: `ds[i] = (t0[i], t1[i], ...)`.

    tensors: each (N, ...) -> sample i is a tuple of tensors of shape (...)."""

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        n = tensors[0].shape[0] if tensors[0].ndim else None
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: argument {i} is a {type(t).__name__}, expected an ember "
                                "Tensor; wrap NumPy arrays with ember.from_numpy")
            if t.ndim == 0 or t.shape[0] != n:
                raise ValueError(f"TensorDataset: all tensors must have the same first dimension; tensor 0 "
                                 f"has {n} rows, tensor {i} has shape {tuple(t.shape)}")
        self.tensors = tuple(tensors)
        # Rows are cut from NumPy views: an ember getitem per sample would build autograd records.
        self._arrays = tuple(None if t.requires_grad else _as_numpy(t) for t in tensors)

    def __getitem__(self, index):
        out = []
        for t, a in zip(self.tensors, self._arrays):
            if a is None:
                out.append(t[index])
            else:
                row = a[index]
                out.append(Tensor._make(np.asarray(row), t.dtype, t.device))
        return tuple(out)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def _gather(self, indices):
        """The default_collate of `[self[i] for i in indices]` in one fancy index per tensor (the
        DataLoader's fast path)."""
        if any(a is None for a in self._arrays):
            return None
        idx = np.asarray(indices, dtype=np.int64)
        return [Tensor._make(a[idx], t.dtype, t.device) for t, a in zip(self.tensors, self._arrays)]


class ConcatDataset(Dataset):
    """Datasets joined end to end: index i runs through the first, then the second, ..."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: expected a non-empty list of datasets")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset: iterable datasets cannot be indexed; use ChainDataset")
        self.cumulative_sizes = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int):
        n = len(self)
        if idx < 0:
            idx += n
        if not 0 <= idx < n:
            raise IndexError(f"ConcatDataset: index {idx} out of range for length {n}")
        d = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[d - 1] if d > 0 else 0
        return self.datasets[d][idx - start]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __len__(self) -> int:
        return len(self.indices)

    def _gather(self, indices):
        gather = getattr(self.dataset, "_gather", None)
        return None if gather is None else gather([self.indices[i] for i in indices])


def random_split(dataset: Dataset, lengths: Sequence[int | float],
                 generator: Generator | None = None) -> list[Subset]:
    """Split `dataset` into non-overlapping random Subsets of the given lengths.

    `lengths` are counts summing to len(dataset), or fractions summing to 1 (floor of each fraction,
    then the remainder handed out one by one from the first split, as torch does)."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and math.isclose(sum(lengths), 1.0) and sum(lengths) <= n:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(x < 0 for x in lengths) or sum(lengths) != n:
        raise ValueError(f"random_split: lengths {lengths} must be non-negative and sum to the dataset "
                         f"length {n} (or be fractions summing to 1)")
    perm = _gen(generator).permutation(n).tolist()
    out, offset = [], 0
    for length in lengths:
        out.append(Subset(dataset, perm[offset:offset + int(length)]))
        offset += int(length)
    return out
