"""Samplers: the order in which a DataLoader visits a map-style dataset's indices.

Every random choice comes from an `ember.random.Generator` (the one passed in, or a fresh stream
seeded from the default generator at each epoch), so `ember.manual_seed` reproduces the order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from ..random import Generator, _gen


class Sampler:
    """Yields dataset indices (or, for a batch sampler, lists of indices)."""

    def __iter__(self) -> Iterator:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__ (the indices it yields)")

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} has no length")


def _epoch_generator(generator: Generator | None) -> Generator:
    """The stream for one epoch: `generator` itself, or a new one seeded by one draw from the default
    generator (torch's rule, so the default stream advances by one draw per epoch)."""
    if generator is not None:
        return generator
    seed = int(_gen(None).integers(0, 2**62, ()))
    return Generator(seed)


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation of the indices each epoch, or `num_samples` draws with replacement."""

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator: Generator | None = None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"RandomSampler: num_samples must be a positive int, got {num_samples!r}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        g = _epoch_generator(self.generator)
        if self.replacement:
            return iter(g.integers(0, n, (self.num_samples,)).tolist())
        # Without replacement and num_samples > n: whole permutations back to back, as torch does.
        full, rest = divmod(self.num_samples, n) if n else (0, 0)
        out = [g.permutation(n) for _ in range(full)] + ([g.permutation(n)[:rest]] if rest else [])
        return iter(np.concatenate(out).tolist() if out else [])

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order each epoch."""

    def __init__(self, indices: Sequence[int], generator: Generator | None = None):
        self.indices = list(indices)
        self.generator = generator

    def __iter__(self):
        g = _epoch_generator(self.generator)
        return iter([self.indices[i] for i in g.permutation(len(self.indices)).tolist()])

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """`num_samples` indices drawn with probability proportional to `weights`."""

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator: Generator | None = None):
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or (w < 0).any() or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be a 1-D sequence of non-negative numbers "
                             "with a positive sum")
        if not replacement and num_samples > int((w > 0).sum()):
            raise ValueError(f"WeightedRandomSampler: cannot draw {num_samples} samples without replacement "
                             f"from {int((w > 0).sum())} non-zero weights")
        self.weights, self.num_samples = w, int(num_samples)
        self.replacement, self.generator = replacement, generator

    def __iter__(self):
        g = _epoch_generator(self.generator)
        p = self.weights / self.weights.sum()
        return iter(g._np.choice(len(p), size=self.num_samples, replace=self.replacement, p=p).tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of `batch_size` (the last one shorter unless
    `drop_last`)."""

    def __init__(self, sampler: Sampler | Iterable[int], batch_size: int, drop_last: bool):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last must be a bool, got {drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _env_int(*names: str) -> int | None:
    for n in names:
        if os.environ.get(n, "").isdigit():
            return int(os.environ[n])
    return None


class DistributedSampler(Sampler):
    """This rank's share of the indices: every rank shuffles with the same `seed + epoch` stream, pads
    (or with drop_last trims) to a multiple of num_replicas, and takes indices[rank::num_replicas].

    num_replicas / rank default to the MPI launcher's environment (PMI_SIZE / PMI_RANK, or Open MPI's
    OMPI_COMM_WORLD_SIZE / _RANK). Call `set_epoch(e)` before each epoch for a new order."""

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None:
            num_replicas = _env_int("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
        if rank is None:
            rank = _env_int("PMI_RANK", "OMPI_COMM_WORLD_RANK")
        if num_replicas is None or rank is None:
            raise ValueError("DistributedSampler: num_replicas and rank are not given and no MPI launcher "
                             "environment was found; pass num_replicas=world_size, rank=rank")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank {rank} is not in [0, {num_replicas})")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, int(seed), drop_last, 0
        n = len(dataset)
        self.num_samples = n // self.num_replicas if drop_last else -(-n // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        n = len(self.dataset)
        idx = Generator(self.seed + self.epoch).permutation(n) if self.shuffle else np.arange(n)
        if self.total_size > n:
            idx = np.resize(idx, self.total_size)  # repeats from the start, as torch pads
        idx = idx[:self.total_size]
        return iter(idx[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples
