"""Datasets for the DataLoader worker tests, in a module without torch so that spawned workers start
quickly (a spawned worker imports the module that defines the dataset's class)."""

import os

import numpy as np

import ember
from ember.data import Dataset, IterableDataset, get_worker_info
from ember.data import transforms as T


class Squares(Dataset):
    """Sample i: (a (2, 3) float32 array of i, i*i as int, a random draw through ember.random, a
    randomly flipped image): randomness makes the worker/main-process comparison strict."""

    def __init__(self, n=23):
        self.n = n
        self.flip = T.RandomHorizontalFlip(0.5)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        img = self.flip(ember.from_numpy(np.arange(6, dtype=np.float32).reshape(1, 2, 3) + i))
        return np.full((2, 3), i, np.float32), i * i, float(ember.rand(()).item()), img


class Failing(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise_deep_in_dataset(i)
        return i


def raise_deep_in_dataset(i):
    raise ValueError(f"sample {i} is corrupt")


class Stream(IterableDataset):
    """0..n-1, each worker taking every num_workers-th item."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))


class DiesInWorker(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        if get_worker_info() is not None and i == 2:
            os._exit(3)
        return i
