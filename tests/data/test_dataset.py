"""Datasets and samplers: TensorDataset, Subset, ConcatDataset, random_split, the samplers."""

import numpy as np
import pytest

import ember
from ember.data import (
    BatchSampler,
    ConcatDataset,
    Dataset,
    DistributedSampler,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    random_split,
)


class Range(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i


def test_tensor_dataset_rows_match_the_tensors():
    x = ember.randn(6, 3)
    y = ember.arange(6)
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[4]
    np.testing.assert_array_equal(xi.numpy(), x.numpy()[4])
    assert yi.item() == 4 and yi.dtype is ember.int64 and xi.shape == (3,)
    xs, ys = ds._gather([5, 0, 2])
    np.testing.assert_array_equal(xs.numpy(), x.numpy()[[5, 0, 2]])
    np.testing.assert_array_equal(ys.numpy(), [5, 0, 2])


def test_tensor_dataset_rejects_mismatched_first_dims():
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(ember.zeros(3, 2), ember.zeros(4))
    with pytest.raises(TypeError, match="ember Tensor"):
        TensorDataset(np.zeros(3))


def test_subset_and_concat_index_through():
    a, b = Range(3), Range(4)
    c = ConcatDataset([a, b])
    assert len(c) == 7
    assert [c[i] for i in range(7)] == [0, 1, 2, 0, 1, 2, 3]
    assert c[-1] == 3
    with pytest.raises(IndexError):
        c[7]
    assert len(a + b) == 7 and (a + b)[3] == 0
    s = Subset(Range(10), [9, 2, 5])
    assert len(s) == 3 and [s[i] for i in range(3)] == [9, 2, 5]


def test_random_split_lengths_partition_the_dataset_reproducibly():
    parts = random_split(Range(10), [3, 7], generator=ember.Generator(1))
    assert [len(p) for p in parts] == [3, 7]
    seen = sorted(p[i] for p in parts for i in range(len(p)))
    assert seen == list(range(10))
    again = random_split(Range(10), [3, 7], generator=ember.Generator(1))
    assert [p.indices for p in parts] == [p.indices for p in again]
    other = random_split(Range(10), [3, 7], generator=ember.Generator(2))
    assert [p.indices for p in parts] != [p.indices for p in other]


def test_random_split_fractions_hand_out_the_remainder_like_torch():
    import torch
    n = 11
    parts = random_split(Range(n), [0.5, 0.3, 0.2])
    want = [len(p) for p in torch.utils.data.random_split(range(n), [0.5, 0.3, 0.2])]
    assert [len(p) for p in parts] == want
    with pytest.raises(ValueError, match="sum to the dataset length"):
        random_split(Range(10), [3, 3])


def test_random_split_uses_the_default_generator_under_manual_seed():
    ember.manual_seed(5)
    a = [p.indices for p in random_split(Range(20), [10, 10])]
    ember.manual_seed(5)
    b = [p.indices for p in random_split(Range(20), [10, 10])]
    assert a == b


def test_sequential_and_random_sampler():
    assert list(SequentialSampler(Range(4))) == [0, 1, 2, 3]
    g = ember.Generator(0)
    perm = list(RandomSampler(Range(50), generator=g))
    assert sorted(perm) == list(range(50)) and perm != list(range(50))
    # the same generator moves on: the next epoch is another order
    assert list(RandomSampler(Range(50), generator=g)) != perm
    ember.manual_seed(7)
    a = list(RandomSampler(Range(50)))
    ember.manual_seed(7)
    assert list(RandomSampler(Range(50))) == a


def test_random_sampler_replacement_and_num_samples():
    s = RandomSampler(Range(5), replacement=True, num_samples=200, generator=ember.Generator(0))
    draws = list(s)
    assert len(s) == 200 and len(draws) == 200
    assert set(draws) == set(range(5))  # 200 draws from 5 values: all appear
    assert max(np.bincount(draws)) > 1
    s = RandomSampler(Range(5), num_samples=12, generator=ember.Generator(0))
    draws = list(s)
    assert len(draws) == 12 and sorted(draws[:5]) == list(range(5)) and sorted(draws[5:10]) == list(range(5))
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(Range(5), num_samples=0)


def test_subset_random_and_weighted_samplers():
    idx = [3, 8, 1, 6]
    out = list(SubsetRandomSampler(idx, generator=ember.Generator(0)))
    assert sorted(out) == sorted(idx)
    w = list(WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 400, generator=ember.Generator(0)))
    counts = np.bincount(w, minlength=4)
    assert counts[0] == 0 and counts[2] == 0 and 250 < counts[3] < 350


def test_batch_sampler_groups_and_drops_last():
    assert list(BatchSampler(range(7), 3, drop_last=False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(BatchSampler(range(7), 3, drop_last=True)) == [[0, 1, 2], [3, 4, 5]]
    assert len(BatchSampler(SequentialSampler(Range(7)), 3, False)) == 3
    assert len(BatchSampler(SequentialSampler(Range(7)), 3, True)) == 2
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(range(3), 0, False)


def test_distributed_sampler_shards_cover_the_dataset_like_torch():
    import torch
    n, world = 10, 3
    shards = [list(DistributedSampler(Range(n), num_replicas=world, rank=r, shuffle=False))
              for r in range(world)]
    want = [list(torch.utils.data.DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False))
            for r in range(world)]
    assert shards == want  # padding repeats the first indices, as in torch
    s = [DistributedSampler(Range(n), num_replicas=world, rank=r, seed=3, drop_last=True)
         for r in range(world)]
    parts = [list(x) for x in s]
    flat = sum(parts, [])
    assert all(len(p) == 3 for p in parts) and len(set(flat)) == 9
    for x in s:
        x.set_epoch(1)
    assert [list(x) for x in s] != parts
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(Range(n), num_replicas=2, rank=2)
