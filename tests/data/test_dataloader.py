"""DataLoader: batching, collation (against torch's default_collate), worker processes that give the
same batches as the main process, worker errors, and shutdown."""

import collections
import time

import numpy as np
import pytest
import torch

import ember
from ember.data import (
    BatchSampler,
    DataLoader,
    SequentialSampler,
    TensorDataset,
    default_collate,
    get_worker_info,
)

from .loader_datasets import DiesInWorker, Failing, Squares, Stream


def _materialise(loader):
    return [[np.array(f.numpy()) if isinstance(f, ember.Tensor) else f for f in batch] for batch in loader]


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for ba, bb in zip(a, b):
        assert len(ba) == len(bb)
        for fa, fb in zip(ba, bb):
            np.testing.assert_array_equal(fa, fb)


def test_sequential_batches_and_len():
    x = ember.arange(10)
    loader = DataLoader(TensorDataset(x), batch_size=4)
    batches = [b[0].numpy().tolist() for b in loader]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(loader) == 3
    loader = DataLoader(TensorDataset(x), batch_size=4, drop_last=True)
    assert [b[0].numpy().tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]] and len(loader) == 2


def test_default_collate_matches_torch():
    Point = collections.namedtuple("Point", "x y")
    samples = [
        {"img": np.full((2, 2), i, np.uint8), "label": i, "w": 0.5 * i, "flag": i % 2 == 0,
         "p": Point(np.float32(i), [i, i + 1]), "name": f"s{i}", "t": ember.full((3,), float(i))}
        for i in range(4)
    ]
    ours = default_collate(samples)
    theirs = torch.utils.data.default_collate(
        [{**s, "t": torch.from_numpy(s["t"].numpy())} for s in samples])
    for key in ("img", "label", "w", "flag", "t"):
        assert isinstance(ours[key], ember.Tensor)
        np.testing.assert_array_equal(ours[key].numpy(), theirs[key].numpy())
        assert str(ours[key].dtype).split(".")[1] == str(theirs[key].dtype).split(".")[1]
    assert isinstance(ours["p"], Point)
    np.testing.assert_array_equal(ours["p"].x.numpy(), theirs["p"].x.numpy())
    assert ours["p"].x.dtype is ember.float32
    assert [t.numpy().tolist() for t in ours["p"].y] == [t.numpy().tolist() for t in theirs["p"].y]
    assert ours["name"] == theirs["name"]
    # tuples become lists, as in torch
    out = default_collate([(1, 2.0), (3, 4.0)])
    assert isinstance(out, list) and out[0].dtype is ember.int64 and out[1].dtype is ember.float64


def test_default_collate_errors_name_the_problem():
    with pytest.raises(ValueError, match="equal shapes"):
        default_collate([ember.zeros(2), ember.zeros(3)])
    with pytest.raises(ValueError, match="same number of fields"):
        default_collate([(1, 2), (3,)])
    with pytest.raises(TypeError, match="collate_fn"):
        default_collate([object(), object()])


def test_fast_gather_path_equals_per_sample_collate():
    x, y = ember.randn(9, 2, 3), ember.randint(0, 5, (9,))
    ds = TensorDataset(x, y)
    fast = _materialise(DataLoader(ds, batch_size=4, shuffle=True, generator=ember.Generator(3)))
    slow = _materialise(DataLoader(ds, batch_size=4, shuffle=True, generator=ember.Generator(3),
                                   collate_fn=lambda b: default_collate(b)))
    _assert_same_batches(fast, slow)


def test_shuffle_is_reproducible_with_manual_seed_and_generator():
    ds = TensorDataset(ember.arange(30))
    ember.manual_seed(1)
    a = [b[0].numpy().tolist() for b in DataLoader(ds, batch_size=7, shuffle=True)]
    ember.manual_seed(1)
    b = [b[0].numpy().tolist() for b in DataLoader(ds, batch_size=7, shuffle=True)]
    assert a == b and sorted(sum(a, [])) == list(range(30)) and sum(a, []) != list(range(30))
    epoch1 = [b[0].numpy().tolist() for b in DataLoader(ds, batch_size=7, shuffle=True)]
    assert epoch1 != a  # the default stream moved on
    g = [b[0].numpy().tolist() for b in DataLoader(ds, batch_size=7, shuffle=True,
                                                   generator=ember.Generator(9))]
    assert g == [b[0].numpy().tolist() for b in DataLoader(ds, batch_size=7, shuffle=True,
                                                            generator=ember.Generator(9))]


def test_sampler_batch_sampler_and_no_batching():
    ds = TensorDataset(ember.arange(6))
    loader = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 4, False))
    assert [b[0].numpy().tolist() for b in loader] == [[0, 1, 2, 3], [4, 5]]
    loader = DataLoader(ds, sampler=[5, 1, 3], batch_size=2)
    assert [b[0].numpy().tolist() for b in loader] == [[5, 1], [3]]
    raw = list(DataLoader(ds, batch_size=None))
    assert len(raw) == 6 and raw[2][0].shape == () and raw[2][0].item() == 2
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, sampler=[0, 1], shuffle=True)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, batch_sampler=[[0]], batch_size=2)
    with pytest.raises(ValueError, match="IterableDataset"):
        DataLoader(Stream(3), shuffle=True)


def test_iterable_dataset_in_main_process():
    loader = DataLoader(Stream(7), batch_size=3)
    assert [b.numpy().tolist() for b in loader] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b.numpy().tolist() for b in DataLoader(Stream(7), batch_size=3, drop_last=True)] == \
        [[0, 1, 2], [3, 4, 5]]


# --- worker processes (kept few: each starts processes) ---------------------------------------------


def _record_worker(worker_id):
    info = get_worker_info()
    assert info is not None and info.id == worker_id and info.num_workers == 2


def test_two_workers_give_exactly_the_single_process_batches():
    ember.manual_seed(123)
    single = _materialise(DataLoader(Squares(), batch_size=4, shuffle=True))
    ember.manual_seed(123)
    loader = DataLoader(Squares(), batch_size=4, shuffle=True, num_workers=2, prefetch_factor=2,
                        worker_init_fn=_record_worker)
    it = iter(loader)
    assert it._send_idx == 4  # prefetch_factor * num_workers batches in flight, of 6
    first = next(it)
    assert it._send_idx == 5
    multi = _materialise([first, *it])
    _assert_same_batches(single, multi)
    labels = sorted(int(np.sqrt(v)) for b in multi for v in b[1])
    assert labels == list(range(23)) and [int(np.sqrt(v)) for v in multi[0][1]] != [0, 1, 2, 3]
    # negative control: another seed gives other batches
    ember.manual_seed(124)
    other = _materialise(DataLoader(Squares(), batch_size=4, shuffle=True, num_workers=2))
    with pytest.raises(AssertionError):
        _assert_same_batches(single, other)


def test_worker_exception_is_reraised_with_the_worker_traceback():
    loader = DataLoader(Failing(), batch_size=2, num_workers=2)
    it = iter(loader)
    assert next(it).numpy().tolist() == [0, 1]
    with pytest.raises(ValueError) as exc:
        list(it)
    msg = str(exc.value)
    assert "sample 5 is corrupt" in msg and "worker process 0" in msg
    assert "raise_deep_in_dataset" in msg and "Traceback" in msg
    assert all(not p.is_alive() for p in it._w.procs)  # shut down, no orphans


def test_iterable_dataset_with_persistent_workers_over_two_epochs():
    loader = DataLoader(Stream(10), batch_size=2, num_workers=2, persistent_workers=True)
    # worker 0 streams 0,2,4,6,8 and worker 1 streams 1,3,5,7,9; batches alternate between them
    want = [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9]]
    first = [b.numpy().tolist() for b in loader]
    it = loader._persistent_iter
    pids = [p.pid for p in it._w.procs]
    second = [b.numpy().tolist() for b in loader]
    assert first == want and second == want
    assert [p.pid for p in loader._persistent_iter._w.procs] == pids
    assert all(p.is_alive() for p in it._w.procs)
    it._shutdown()
    assert all(not p.is_alive() for p in it._w.procs)


def test_abandoned_iterator_shuts_down_and_dead_worker_is_reported():
    loader = DataLoader(Squares(), batch_size=2, num_workers=2)
    it = iter(loader)
    next(it)
    procs = it._w.procs
    del it
    deadline = time.monotonic() + 10
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(not p.is_alive() for p in procs)
    with pytest.raises(RuntimeError, match="exited unexpectedly with exit code 3"):
        list(DataLoader(DiesInWorker(), batch_size=1, num_workers=2))


def test_spawn_context_gives_the_same_batches():
    ember.manual_seed(7)
    single = _materialise(DataLoader(Squares(9), batch_size=4, shuffle=True))
    ember.manual_seed(7)
    multi = _materialise(DataLoader(Squares(9), batch_size=4, shuffle=True, num_workers=2,
                                    multiprocessing_context="spawn"))
    _assert_same_batches(single, multi)
