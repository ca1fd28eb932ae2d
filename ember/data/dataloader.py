"""DataLoader: batches from a dataset, in the main process or in worker processes.

The parent alone decides the order: it draws the sampler's indices and hands batch i to worker
i mod num_workers, then yields results in i order. Each batch also gets its own random stream, so
`num_workers=2` gives exactly the batches of `num_workers=0` for the same seed, random transforms
included (ember-specific: torch only promises the order).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import pickle
import queue
import time
import weakref

from ..random import Generator, _gen
from ._fetch import FetcherFactory
from ._worker import ExceptionWrapper, IterableEnd, SeededDefault, batch_seed, worker_loop
from .collate import default_collate, default_convert
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

# How often the parent, while waiting for a batch, checks that its workers are alive (seconds).
_WATCHDOG_INTERVAL = 1.0


class DataLoader:
    """Iterate over `dataset` in batches.

    batch_size / shuffle / sampler / batch_sampler / drop_last / collate_fn as in torch.
    num_workers > 0 fetches batches in that many processes (`multiprocessing_context`: 'fork' (default
    on Linux), 'spawn' or 'forkserver'), each with up to `prefetch_factor` batches in flight;
    `worker_init_fn(worker_id)` runs first in each worker; `persistent_workers` keeps them across
    epochs. `generator` seeds the shuffle order and the per-batch random streams."""

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | None = None, batch_sampler: Sampler | None = None, num_workers: int = 0,
                 collate_fn=None, pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn=None, multiprocessing_context=None, generator: Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False):
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be a non-negative int, got {num_workers!r}")
        if timeout < 0:
            raise ValueError(f"DataLoader: timeout must be non-negative, got {timeout}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor needs num_workers > 0 (nothing is prefetched in "
                             "the main process)")
        if prefetch_factor is not None and prefetch_factor < 1:
            raise ValueError(f"DataLoader: prefetch_factor must be >= 1, got {prefetch_factor}")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers needs num_workers > 0")
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = 2 if prefetch_factor is None and num_workers > 0 else prefetch_factor
        self.pin_memory = pin_memory  # accepted for torch compatibility; cpu buffers need no pinning
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.persistent_workers = persistent_workers
        self._iterable = isinstance(dataset, IterableDataset)

        if self._iterable:
            if shuffle:
                raise ValueError("DataLoader: shuffle=True is not possible with an IterableDataset (it has "
                                 "no indices); shuffle inside the dataset")
            if sampler is not None or batch_sampler is not None:
                raise ValueError("DataLoader: sampler and batch_sampler do not apply to an IterableDataset")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive (the sampler "
                             "decides the order)")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler is mutually exclusive with batch_size, shuffle, "
                                 "sampler and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None (no batching) and drop_last=True do not go "
                             "together")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
            raise ValueError(f"DataLoader: batch_size must be a positive int or None, got {batch_size!r}")

        if sampler is None and not self._iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size, self.drop_last = batch_size, drop_last
        self.sampler, self.batch_sampler = sampler, batch_sampler
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self._persistent_iter = None

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None or (self._iterable and self.batch_size is not None)

    @property
    def _index_sampler(self):
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def _fetcher_factory(self) -> FetcherFactory:
        return FetcherFactory(self.dataset, self._iterable, self._auto_collation, self.collate_fn,
                              self.batch_size, self.drop_last)

    def __iter__(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if self.persistent_workers:
            if self._persistent_iter is None or self._persistent_iter._shut:
                self._persistent_iter = _MultiProcessIter(self)
            else:
                self._persistent_iter._reset()
            return self._persistent_iter
        return _MultiProcessIter(self)

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # TypeError when the stream has no length, as in torch
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        return len(self._index_sampler)


class _BaseIter:
    def __init__(self, loader: DataLoader):
        self._loader = loader
        self._fast = None
        self._new_epoch()

    def _new_epoch(self):
        # The order of the two draws is the same for every num_workers: that is what makes them agree.
        self._base_seed = int(_gen(self._loader.generator).integers(0, 2**62, ()))
        sampler = self._loader._index_sampler
        self._sampler_iter = itertools.repeat(None) if sampler is None else iter(sampler)
        self._num_yielded = 0

    def __iter__(self):
        return self

    def __len__(self) -> int:
        return len(self._loader)


class _SingleProcessIter(_BaseIter):
    def __init__(self, loader: DataLoader):
        super().__init__(loader)
        self._fetcher = loader._fetcher_factory()()

    def __next__(self):
        indices = next(self._sampler_iter)
        seed = batch_seed(self._base_seed, self._num_yielded) if self._fetcher.draws_randomness else None
        with SeededDefault(seed):
            data = self._fetcher.fetch(indices)
        self._num_yielded += 1
        return data


class _Workers:
    """The processes and queues of one multi-process iterator; `shutdown()` is idempotent and is also
    run by a finalizer when the iterator is garbage-collected (it must not refer to the iterator)."""

    def __init__(self, loader: DataLoader, base_seed: int):
        ctx = loader.multiprocessing_context
        if ctx is None:
            ctx = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        ctx = mp.get_context(ctx) if isinstance(ctx, str) else ctx
        self.done_event = ctx.Event()
        self.data_queue = ctx.Queue()
        self.index_queues, self.procs = [], []
        self.shut = False
        factory = loader._fetcher_factory()
        try:
            for w in range(loader.num_workers):
                iq = ctx.Queue()
                iq.cancel_join_thread()  # never block the parent's exit on tasks no worker will read
                p = ctx.Process(target=worker_loop, daemon=True,
                                args=(w, loader.num_workers, factory, iq, self.data_queue, self.done_event,
                                      base_seed, loader.worker_init_fn, os.getpid()))
                self.index_queues.append(iq)
                p.start()
                self.procs.append(p)
        except Exception as e:
            self.shutdown()
            if isinstance(e, (pickle.PicklingError, AttributeError, TypeError)):
                raise RuntimeError(f"DataLoader: could not start worker processes with the "
                                   f"{ctx.get_start_method()!r} start method: {e}. Hint: with 'spawn' the "
                                   "dataset, collate_fn and worker_init_fn must be picklable (defined at "
                                   "module level, no lambdas)") from e
            raise

    def shutdown(self):
        if self.shut:
            return
        self.shut = True
        self.done_event.set()
        for iq in self.index_queues:
            try:
                iq.put(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 5.0
        for p in self.procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=1.0)
        for q in [*self.index_queues, self.data_queue]:
            q.cancel_join_thread()
            q.close()


class _MultiProcessIter(_BaseIter):
    def __init__(self, loader: DataLoader):
        super().__init__(loader)
        self._n = loader.num_workers
        self._w = _Workers(loader, self._base_seed)
        self._finalizer = weakref.finalize(self, self._w.shutdown)
        self._epoch = 0
        self._start_epoch()

    @property
    def _shut(self) -> bool:
        return self._w.shut

    def _start_epoch(self):
        self._send_idx = 0      # next task to send
        self._rcvd_idx = 0      # next batch to yield
        self._tasks = {}        # idx -> [worker] or [worker, payload] once it arrived early
        self._active = [True] * self._n
        self._worker_cycle = itertools.cycle(range(self._n))
        self._exhausted = False
        for _ in range(self._loader.prefetch_factor * self._n):
            self._try_put_task()

    def _reset(self):
        """Start a new epoch on the same (persistent) workers."""
        self._new_epoch()
        self._epoch += 1
        if self._loader._iterable:
            for iq in self._w.index_queues:
                iq.put(("reset", self._epoch))
        self._start_epoch()

    def _try_put_task(self):
        if self._exhausted or not any(self._active):
            return
        try:
            indices = next(self._sampler_iter)
        except StopIteration:
            self._exhausted = True
            return
        for _ in range(self._n):
            w = next(self._worker_cycle)
            if self._active[w]:
                break
        seed = batch_seed(self._base_seed, self._send_idx)
        self._w.index_queues[w].put((self._epoch, self._send_idx, indices, seed))
        self._tasks[self._send_idx] = [w]
        self._send_idx += 1

    def __next__(self):
        while True:
            # Skip batches that a worker whose stream ended will never send.
            while self._rcvd_idx < self._send_idx:
                info = self._tasks.get(self._rcvd_idx)
                if info is not None and (len(info) == 2 or self._active[info[0]]):
                    break
                self._tasks.pop(self._rcvd_idx, None)
                self._rcvd_idx += 1
            else:
                if not self._loader.persistent_workers:
                    self._shutdown()
                raise StopIteration
            info = self._tasks[self._rcvd_idx]
            if len(info) == 2:
                return self._deliver(info[1])
            epoch, idx, payload = self._get()
            if epoch != self._epoch:
                continue  # left over from an epoch that was abandoned early
            data = pickle.loads(payload)
            if isinstance(data, IterableEnd):
                self._active[data.worker_id] = False
                self._tasks.pop(idx, None)
                continue
            if idx != self._rcvd_idx:
                self._tasks[idx].append(data)
                continue
            return self._deliver(data)

    def _deliver(self, data):
        del self._tasks[self._rcvd_idx]
        self._rcvd_idx += 1
        self._num_yielded += 1
        if isinstance(data, ExceptionWrapper):
            self._shutdown()
            data.reraise()
        self._try_put_task()
        return data

    def _get(self):
        """The next result from any worker; raises if a worker died or `timeout` passed."""
        timeout = self._loader.timeout
        start = time.monotonic()
        while True:
            wait = _WATCHDOG_INTERVAL if not timeout else min(_WATCHDOG_INTERVAL, timeout)
            try:
                return self._w.data_queue.get(timeout=wait)
            except queue.Empty:
                pass
            dead = [(w, p) for w, p in enumerate(self._w.procs) if not p.is_alive()]
            if dead:
                w, p = dead[0]
                self._shutdown()
                raise RuntimeError(f"DataLoader worker {w} (pid {p.pid}) exited unexpectedly with exit code "
                                   f"{p.exitcode}. Hint: a negative code is the signal that killed it (-9: "
                                   "out of memory?); try num_workers=0 to see the error in the main process")
            if timeout and time.monotonic() - start >= timeout:
                self._shutdown()
                raise RuntimeError(f"DataLoader timed out after {timeout} seconds waiting for a batch from "
                                   "the workers")

    def _shutdown(self):
        self._finalizer()
