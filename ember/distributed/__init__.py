"""Parallel training over MPI: SPMD ranks, collectives (comm.py), meshes and strategies.

Start a job with `ember run -n N script.py`; inside, `ember.distributed.init()` joins it.
Without mpiexec the world has one rank, so the same script runs alone.
"""

from .comm import (
    DistributedError,
    ProcessGroup,
    ReduceOp,
    Work,
    all_gather,
    all_gather_into_tensor,
    all_gather_object,
    all_reduce,
    all_to_all,
    all_to_all_single,
    barrier,
    broadcast,
    broadcast_object,
    gather,
    get_rank,
    get_world_size,
    init,
    irecv,
    is_initialized,
    isend,
    new_group,
    record_events,
    recv,
    reduce,
    reduce_scatter,
    reduce_scatter_tensor,
    scatter,
    send,
    split_group,
    stats,
)
from .mesh import DeviceMesh


def __getattr__(name):
    # strategies import ember.nn, which is a layer above: load them on first use
    if name in ("DistributedDataParallel", "DDP"):
        from .ddp import DistributedDataParallel
        return DistributedDataParallel
    raise AttributeError(name)

__all__ = [
    "DistributedError", "ProcessGroup", "ReduceOp", "Work", "all_gather", "all_gather_into_tensor",
    "all_gather_object", "all_reduce", "all_to_all", "all_to_all_single", "barrier", "broadcast",
    "broadcast_object", "gather", "get_rank", "get_world_size", "init", "irecv", "is_initialized", "isend",
    "new_group", "recv", "record_events", "reduce", "reduce_scatter", "reduce_scatter_tensor", "scatter", "send",
    "split_group", "stats", "DeviceMesh",
]
