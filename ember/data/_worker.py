"""What runs inside a DataLoader worker process, and the pieces the parent and workers share.

A worker takes `(epoch, idx, indices, seed)` tasks from its own index queue, fetches and collates the
batch, and puts `(epoch, idx, payload)` on the shared result queue. The payload is pickled here, in
the worker, so an unpicklable batch becomes a reported error instead of a silent hang.
"""

from __future__ import annotations

import os
import pickle
import queue
import random
import sys
import traceback
from dataclasses import dataclass

import numpy as np

from .. import random as erandom

# How often an idle worker checks whether its parent is still alive (seconds).
POLL_INTERVAL = 1.0


@dataclass(frozen=True)
class WorkerInfo:
    """What `get_worker_info()` returns inside a worker: its id, the worker count, its seed and its
    copy of the dataset."""
    id: int
    num_workers: int
    seed: int
    dataset: object


_worker_info: WorkerInfo | None = None  # set once per worker process, never in the parent


def get_worker_info() -> WorkerInfo | None:
    """The WorkerInfo of the calling DataLoader worker, or None in the main process."""
    return _worker_info


class ExceptionWrapper:
    """An exception caught in a worker, carried to the parent with its formatted traceback."""

    def __init__(self, exc_info, where: str):
        exc_type = exc_info[0]
        try:
            pickle.loads(pickle.dumps(exc_type))
        except Exception:
            exc_type = RuntimeError  # a type the parent cannot import: keep the message, lose the class
        self.exc_type = exc_type
        self.exc_name = exc_info[0].__name__
        self.tb = "".join(traceback.format_exception(*exc_info))
        self.where = where

    def reraise(self):
        """Raise the worker's exception in the caller, its message holding the worker's traceback."""
        msg = f"Caught {self.exc_name} {self.where}.\nOriginal {self.tb}"
        if self.exc_type is KeyError:
            msg = _KeyErrorMessage(msg)
        try:
            exc = self.exc_type(msg)
        except Exception:
            exc = None
        if exc is None:
            raise RuntimeError(msg)
        raise exc


class _KeyErrorMessage(str):
    """KeyError repr()s its message; this keeps the traceback's line breaks readable."""

    def __repr__(self):
        return str(self)


class IterableEnd:
    """Sent by a worker whose iterable dataset is exhausted."""

    def __init__(self, worker_id: int):
        self.worker_id = worker_id


class SeededDefault:
    """Within the block, ember's default generator draws from stream `seed`; afterwards it continues
    where it was. This gives every batch its own stream, so random transforms give the same batches
    whichever process (and however many workers) fetch them."""

    __slots__ = ("seed", "state")

    def __init__(self, seed: int | None):
        self.seed = seed

    def __enter__(self):
        if self.seed is not None:
            self.state = erandom.default_generator.get_state()
            erandom.default_generator.manual_seed(self.seed)

    def __exit__(self, *exc):
        if self.seed is not None:
            erandom.default_generator.set_state(self.state)
        return False


def batch_seed(base_seed: int, idx: int) -> int:
    return (base_seed + 1 + idx) % (2**63)


def worker_loop(worker_id, num_workers, make_fetcher, index_queue, data_queue, done_event, base_seed,
                worker_init_fn, parent_pid):
    """The main function of worker `worker_id` (runs until it receives None or its parent dies)."""
    global _worker_info
    seed = (base_seed + worker_id) % (2**63)
    erandom.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    fetcher = None
    init_error = None
    try:
        _worker_info = WorkerInfo(worker_id, num_workers, seed, make_fetcher.dataset)
        if worker_init_fn is not None:
            worker_init_fn(worker_id)
        fetcher = make_fetcher()
    except Exception:
        init_error = ExceptionWrapper(sys.exc_info(), f"in DataLoader worker process {worker_id} at start-up")

    try:
        while True:
            try:
                task = index_queue.get(timeout=POLL_INTERVAL)
            except queue.Empty:
                if os.getppid() != parent_pid or done_event.is_set():
                    break
                continue
            if task is None or done_event.is_set():
                break
            if task[0] == "reset":  # a persistent worker starting a new epoch
                if init_error is None:
                    try:
                        fetcher = make_fetcher()
                    except Exception:
                        init_error = ExceptionWrapper(sys.exc_info(),
                                                      f"in DataLoader worker process {worker_id}")
                continue
            epoch, idx, indices, bseed = task
            if init_error is not None:
                data = init_error
            else:
                try:
                    with SeededDefault(bseed):
                        data = fetcher.fetch(indices)
                except StopIteration:
                    data = IterableEnd(worker_id)
                except Exception:
                    data = ExceptionWrapper(sys.exc_info(), f"in DataLoader worker process {worker_id}")
            try:
                payload = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                payload = pickle.dumps(ExceptionWrapper(
                    sys.exc_info(), f"in DataLoader worker process {worker_id} while sending a batch "
                    "to the main process (the batch must be picklable)"))
            data_queue.put((epoch, idx, payload))
    except KeyboardInterrupt:
        pass  # the parent sees the interrupt too and shuts the workers down
    if done_event.is_set():
        data_queue.cancel_join_thread()  # the parent no longer reads: do not block on a full pipe
    data_queue.close()
