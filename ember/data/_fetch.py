"""Fetchers: turn what the sampler yields into a collated batch, the same way in the main process and
in a worker (so both produce identical batches)."""

from __future__ import annotations

from itertools import islice

from .collate import default_collate


class MapFetcher:
    """For map-style datasets: `fetch(indices)` -> collate([dataset[i] for i in indices])."""

    def __init__(self, dataset, auto_collation: bool, collate_fn):
        self.dataset, self.auto_collation, self.collate_fn = dataset, auto_collation, collate_fn
        # A dataset with `_gather` (TensorDataset, LMDataset) hands back the default_collate of a whole
        # batch in one fancy index: no per-sample Python objects.
        self.gather = getattr(dataset, "_gather", None) if collate_fn is default_collate else None

    @property
    def draws_randomness(self) -> bool:
        return self.gather is None

    def fetch(self, indices):
        if not self.auto_collation:
            return self.collate_fn(self.dataset[indices])
        if self.gather is not None:
            out = self.gather(indices)
            if out is not None:
                return out
        get_many = getattr(self.dataset, "__getitems__", None)
        samples = get_many(indices) if get_many is not None else [self.dataset[i] for i in indices]
        return self.collate_fn(samples)


class IterFetcher:
    """For iterable datasets: `fetch(None)` -> the next batch of the stream, StopIteration at its end."""

    draws_randomness = False

    def __init__(self, dataset, auto_collation: bool, collate_fn, batch_size: int | None, drop_last: bool):
        self.it = iter(dataset)
        self.auto_collation, self.collate_fn = auto_collation, collate_fn
        self.batch_size, self.drop_last = batch_size, drop_last

    def fetch(self, _):
        if not self.auto_collation:
            return self.collate_fn(next(self.it))
        batch = list(islice(self.it, self.batch_size))
        if not batch or (self.drop_last and len(batch) < self.batch_size):
            raise StopIteration
        return self.collate_fn(batch)


class FetcherFactory:
    """A picklable recipe for a fetcher, so a spawned worker can build its own."""

    def __init__(self, dataset, iterable: bool, auto_collation: bool, collate_fn, batch_size, drop_last):
        self.dataset, self.iterable, self.auto_collation = dataset, iterable, auto_collation
        self.collate_fn, self.batch_size, self.drop_last = collate_fn, batch_size, drop_last

    def __call__(self):
        if self.iterable:
            return IterFetcher(self.dataset, self.auto_collation, self.collate_fn, self.batch_size,
                               self.drop_last)
        return MapFetcher(self.dataset, self.auto_collation, self.collate_fn)
