"""Collectives over MPI (mpi4py), with byte accounting and a watchdog.

Every collective in ember goes through here: it checks that the ranks agree on what they
send, counts calls and bytes per (collective, group) for `stats()`, and waits with a
timeout, so a rank that never arrives ends the job with a message naming the collective
and the missing ranks instead of a silent hang. Tensors are ember Tensors on cpu and are
updated in place, as in torch.distributed.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .. import autograd
from ..errors import DTypeError, EmberError, ShapeError
from ..tensor import Tensor


class DistributedError(EmberError, RuntimeError):
    """A collective used wrongly (mismatched ranks, not initialised) or timed out."""


class ReduceOp:
    SUM, AVG, MAX, MIN, PRODUCT = "sum", "avg", "max", "min", "product"


@dataclass
class ProcessGroup:
    """A set of ranks that run collectives together: an MPI communicator plus a name."""

    comm: object
    name: str
    ranks: tuple  # world ranks, in group-rank order
    gid: int  # slot in the watchdog table

    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    @property
    def size(self) -> int:
        return self.comm.Get_size()


class _State:
    mpi = None
    world: ProcessGroup | None = None
    timeout = 300.0
    check_args = True  # verify that ranks agree on each collective's dtype and size
    stats: dict = defaultdict(lambda: {"calls": 0, "bytes": 0, "wire_bytes": 0})
    seq: dict = defaultdict(int)  # collectives entered, per group
    table = None  # shared-memory (node_ranks, 64) int64: seq entered per group, for the watchdog
    node_index: dict = {}  # world rank -> row in `table`
    groups = 0
    events: list | None = None
    waiting: tuple | None = None  # (collective, group, deadline) the main thread is blocked in


def _mpi():
    if _State.mpi is None:
        raise DistributedError("ember.distributed is not initialised; call ember.distributed.init() first "
                               "(and start the job with `ember run -n N script.py`)")
    return _State.mpi


def _excepthook(kind, value, tb):
    """Any uncaught exception on a rank aborts the whole job (never a hang), naming the rank."""
    rank = _State.world.comm.Get_rank() if _State.world else "?"
    text = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(f"[ember rank {rank}] uncaught exception, aborting the job:\n{text}")
    sys.stderr.flush()
    _State.world.comm.Abort(1)


def init(timeout: float | None = None, check_args: bool = True) -> ProcessGroup:
    """Join the job: read rank and size from MPI (world size 1 without mpiexec). Idempotent.

    timeout: seconds a collective may wait before the watchdog ends the job (default 300, or
    the EMBER_TIMEOUT that `ember run --timeout` sets).
    check_args: before each collective, check with one tiny all-reduce that every rank passes the
    same dtype and size (a mismatch raises instead of corrupting memory); False saves that round
    trip once a program is known to be right."""
    _State.check_args = check_args
    if _State.world is not None:
        return _State.world
    from mpi4py import MPI
    _State.mpi = MPI
    _State.timeout = float(timeout if timeout is not None else os.environ.get("EMBER_TIMEOUT", 300))
    world = MPI.COMM_WORLD
    _State.world = ProcessGroup(world, "world", tuple(range(world.Get_size())), _next_gid())
    node = world.Split_type(MPI.COMM_TYPE_SHARED)
    n = node.Get_size()
    win = MPI.Win.Allocate_shared(n * 64 * 8 if node.Get_rank() == 0 else 0, 8, comm=node)
    buf, _ = win.Shared_query(0)
    _State.table = np.ndarray(buffer=buf, dtype=np.int64, shape=(n, 64))
    _State._win = win
    members = node.allgather(world.Get_rank())
    _State.node_index = {r: i for i, r in enumerate(members)}
    node.Barrier()
    sys.excepthook = _excepthook
    if world.Get_size() > 1:
        threading.Thread(target=_watchdog_loop, name="ember-watchdog", daemon=True).start()
    return _State.world


def _next_gid() -> int:
    gid = _State.groups
    _State.groups += 1
    if gid >= 64:
        raise DistributedError("too many process groups (the watchdog tracks at most 64)")
    return gid


def is_initialized() -> bool:
    return _State.world is not None


def _group(group) -> ProcessGroup:
    if group is None:
        if _State.world is None:
            raise DistributedError("ember.distributed is not initialised; call ember.distributed.init() first")
        return _State.world
    return group


def get_rank(group: ProcessGroup | None = None) -> int:
    """This process's rank in `group` (the world by default); 0 when not initialised."""
    if group is None and _State.world is None:
        return 0
    return _group(group).rank


def get_world_size(group: ProcessGroup | None = None) -> int:
    if group is None and _State.world is None:
        return 1
    return _group(group).size


def new_group(ranks, name: str | None = None) -> ProcessGroup | None:
    """A group of the given world ranks. Collective over the world: every rank must call it."""
    w = _group(None)
    ranks = tuple(sorted(ranks))
    me = w.rank
    color = 0 if me in ranks else _mpi().UNDEFINED
    comm = w.comm.Split(color, me)
    gid = _next_gid()
    if me not in ranks:
        return None
    return ProcessGroup(comm, name or f"group{gid}", ranks, gid)


def split_group(color: int, key: int, name: str) -> ProcessGroup:
    """Split the world by `color` (ranks sharing a color form a group). Collective over the world."""
    w = _group(None)
    comm = w.comm.Split(color, key)
    ranks = tuple(comm.allgather(w.rank))
    return ProcessGroup(comm, name, ranks, _next_gid())


# --- bookkeeping ------------------------------------------------------------------------------


def stats(reset: bool = False) -> dict:
    """Calls, payload bytes and ring-model bytes sent by this rank, per 'collective/group'.

    `bytes` is the size of the tensor each rank passes in; `wire_bytes` is what a ring (or
    tree for broadcast) algorithm sends from this rank: 2(N-1)/N * bytes for all_reduce,
    (N-1)/N * bytes for reduce_scatter of the full buffer and for all_gather of the result.
    ember-specific: torch.distributed keeps no such counters."""
    out = {k: dict(v) for k, v in _State.stats.items()}
    if reset:
        _State.stats.clear()
    return out


def record_events(on: bool = True) -> list | None:
    """Start (or stop) logging (time, event, name) tuples of collective launches and completions."""
    _State.events = [] if on else None
    return _State.events


def _log(event: str, name: str) -> None:
    if _State.events is not None:
        _State.events.append((time.perf_counter(), event, name))


def _account(kind: str, g: ProcessGroup, nbytes: int, wire: float) -> None:
    s = _State.stats[f"{kind}/{g.name}"]
    s["calls"] += 1
    s["bytes"] += int(nbytes)
    s["wire_bytes"] += int(round(wire))


_DTYPE_CODE: dict = {}


def _check_agree(kind: str, g: ProcessGroup, *arrays: np.ndarray) -> None:
    """All ranks must pass the same dtype and size: one tiny all-reduce of (code, numel) as [x, -x]."""
    if g.size == 1 or not _State.check_args:
        return
    MPI = _mpi()
    sig = []
    for a in arrays:
        code = _DTYPE_CODE.setdefault(a.dtype.str, len(_DTYPE_CODE) + 1)
        sig += [code, a.size]
    mine = np.array(sig + [-v for v in sig], dtype=np.int64)
    both = np.empty_like(mine)
    _wait(g.comm.Iallreduce(mine, both, op=MPI.MAX), kind, g)
    half = len(sig)
    if np.any(both[:half] != -both[half:]):
        raise ShapeError(f"{kind}: ranks of group '{g.name}' passed different tensors: this rank has "
                         f"{', '.join(f'{a.dtype} with {a.size} elements' for a in arrays)}; every rank must "
                         "pass the same dtype and number of elements")


def _graph_break(kind: str) -> None:
    """Collectives are not graph nodes yet: inside ember.compile's tracer, one is a graph break, so the
    compiled function runs eagerly (correct, with one warning) rather than replaying without it."""
    if autograd._tracer is not None:
        autograd._tracer.brk(f"{kind} (a collective) cannot be captured in a compiled graph yet")


def _begin(kind: str, g: ProcessGroup, *arrays: np.ndarray) -> None:
    """Mark this rank as arrived at the group's next collective, then check the ranks agree."""
    _graph_break(kind)
    _enter(g)
    _check_agree(kind, g, *arrays)


def _wait(req, kind: str, g: ProcessGroup) -> None:
    """Wait for an MPI request in a blocking MPI_Wait (which releases the GIL and lets MPI progress at
    full speed); the watchdog thread ends the job if the wait outlasts the timeout.

    A Python loop polling Test() cost 2-5% of the transfer time (MPI progresses only inside the calls,
    and each Python iteration between them delays the next chunk): bench/allreduce.py."""
    if req.Test():
        return
    _State.waiting = (kind, g, time.monotonic() + _State.timeout)
    try:
        req.Wait()
    finally:
        _State.waiting = None


def _blocking(call, send, recv, mop, kind: str, g: ProcessGroup) -> None:
    """Run a blocking MPI collective `call(send, recv, op=mop)` under the watchdog."""
    _State.waiting = (kind, g, time.monotonic() + _State.timeout)
    try:
        call(send, recv, op=mop)
    finally:
        _State.waiting = None


def _watchdog_loop() -> None:
    """Daemon thread: fire when the collective the main thread waits in has passed its deadline."""
    while True:
        time.sleep(min(0.5, _State.timeout / 4))
        w = _State.waiting
        if w is not None and time.monotonic() > w[2]:
            _watchdog_fire(w[0], w[1])


def _enter(g: ProcessGroup) -> int:
    _State.seq[g.gid] += 1
    k = _State.seq[g.gid]
    row = _State.node_index.get(_State.world.rank)
    if row is not None:
        _State.table[row, g.gid] = k
    return k


def _watchdog_fire(kind: str, g: ProcessGroup) -> None:
    k = _State.seq[g.gid]
    missing, unknown = [], []
    for r in g.ranks:
        row = _State.node_index.get(r)
        if row is None:
            unknown.append(r)
        elif _State.table[row, g.gid] < k:
            missing.append(r)
    msg = (f"[ember rank {_State.world.rank}] watchdog: collective '{kind}' #{k} on group '{g.name}' waited "
           f"more than {_State.timeout:g} s; ranks that did not arrive: {missing or 'none known'}"
           + (f" (ranks on other hosts not checked: {unknown})" if unknown else "") + ". Ending the job.\n")
    sys.stderr.write(msg)
    sys.stderr.flush()
    _State.world.comm.Abort(3)


class Work:
    """Handle of an asynchronous collective: `wait()` completes it (and runs its finishing step)."""

    def __init__(self, req, kind: str, g: ProcessGroup, finish=None):
        self._req, self._kind, self._g, self._finish = req, kind, g, finish
        self._done = False

    def is_completed(self) -> bool:
        if not self._done and self._req.Test():
            self._complete()
        return self._done

    def wait(self) -> bool:
        if not self._done:
            _wait(self._req, self._kind, self._g)
            self._complete()
        return True

    def _complete(self):
        self._done = True
        if self._finish is not None:
            self._finish()
        _log("done", self._kind)


def _run(req, kind, g, async_op, finish=None):
    work = Work(req, kind, g, finish)
    _log("start", kind)
    if async_op:
        return work
    work.wait()
    return None


def _buf(t: Tensor, kind: str) -> np.ndarray:
    if not isinstance(t, Tensor):
        raise DTypeError(f"{kind}: expected an ember Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise DTypeError(f"{kind}: MPI collectives take cpu tensors, got one on {t.device}")
    a = t._data
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise ShapeError(f"{kind}: the tensor must be contiguous and writable (call .contiguous().clone())")
    return a


def _mpi_view(a: np.ndarray) -> np.ndarray:
    # MPI has no bfloat16/float16 types: move their bits as 16-bit words (reductions use _lowp_op)
    return a.view(np.uint16) if a.dtype.itemsize == 2 and a.dtype.kind not in "iu" else a


_LOWP_OPS: dict = {}


def _lowp_op(op: str, np_dtype):
    """MPI has no float16/bfloat16 arithmetic: a user-defined op that adds (or max/min) them in NumPy."""
    key = (op, np_dtype.str)
    if key not in _LOWP_OPS:
        fn = {"sum": np.add, "avg": np.add, "max": np.maximum, "min": np.minimum, "product": np.multiply}[op]

        def combine(inmem, outmem, datatype):
            a = np.frombuffer(inmem, dtype=np_dtype)
            b = np.frombuffer(outmem, dtype=np_dtype)
            b[...] = fn(a, b)
        _LOWP_OPS[key] = _mpi().Op.Create(combine, commute=True)
    return _LOWP_OPS[key]


def _op(op: str, a: np.ndarray, kind: str):
    MPI = _mpi()
    if op not in ("sum", "avg", "max", "min", "product"):
        raise ValueError(f"{kind}: unknown reduce op {op!r}; expected one of ReduceOp.SUM/AVG/MAX/MIN/PRODUCT")
    if a.dtype.itemsize == 2 and a.dtype.kind not in "iu":
        return _lowp_op(op, a.dtype)
    return {"sum": MPI.SUM, "avg": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN, "product": MPI.PROD}[op]


# --- collectives ------------------------------------------------------------------------------


def all_reduce(tensor: Tensor, op: str = ReduceOp.SUM, group: ProcessGroup | None = None,
               async_op: bool = False):
    """Reduce `tensor` over the group and leave the result on every rank (in place)."""
    g = _group(group)
    a = _buf(tensor, "all_reduce")
    _begin("all_reduce", g, a)
    _account("all_reduce", g, a.nbytes, 2 * (g.size - 1) / g.size * a.nbytes)
    mop = _op(op, a, "all_reduce")
    if not async_op:  # the common case, kept short: one blocking call (bench/allreduce.py)
        _log("start", "all_reduce")
        _blocking(g.comm.Allreduce, _State.mpi.IN_PLACE, _mpi_view(a), mop, "all_reduce", g)
        if op == ReduceOp.AVG:
            a[...] /= g.size
        tensor._vc[0] += 1
        _log("done", "all_reduce")
        return None
    req = g.comm.Iallreduce(_State.mpi.IN_PLACE, _mpi_view(a), op=mop)

    def finish():
        if op == ReduceOp.AVG:
            a[...] /= g.size
        tensor._vc[0] += 1
    return _run(req, "all_reduce", g, async_op, finish)


def reduce_scatter_tensor(output: Tensor, input: Tensor, op: str = ReduceOp.SUM,
                          group: ProcessGroup | None = None, async_op: bool = False):
    """Reduce `input` (size N * output.numel()) over the group; rank i keeps chunk i in `output`."""
    g = _group(group)
    a, o = _buf(input, "reduce_scatter"), _buf(output, "reduce_scatter")
    if a.size != o.size * g.size:
        raise ShapeError(f"reduce_scatter: input has {a.size} elements, expected output's {o.size} x "
                         f"{g.size} ranks = {o.size * g.size}")
    _begin("reduce_scatter", g, a)
    _account("reduce_scatter", g, a.nbytes, (g.size - 1) / g.size * a.nbytes)
    req = g.comm.Ireduce_scatter_block(_mpi_view(a), _mpi_view(o), op=_op(op, a, "reduce_scatter"))

    def finish():
        if op == ReduceOp.AVG:
            o[...] /= g.size
        output._vc[0] += 1
    return _run(req, "reduce_scatter", g, async_op, finish)


def reduce_scatter(output: Tensor, input_list: list, op: str = ReduceOp.SUM, group=None, async_op=False):
    """torch's list form: rank i receives the reduction of every rank's input_list[i]."""
    from ..ops import cat
    flat = cat([t.reshape(-1) for t in input_list]).contiguous()
    return reduce_scatter_tensor(output, flat, op, group, async_op)


def all_gather_into_tensor(output: Tensor, input: Tensor, group: ProcessGroup | None = None,
                           async_op: bool = False):
    """Concatenate every rank's `input` (rank order) into `output` on all ranks."""
    g = _group(group)
    a, o = _buf(input, "all_gather"), _buf(output, "all_gather")
    if o.size != a.size * g.size:
        raise ShapeError(f"all_gather: output has {o.size} elements, expected input's {a.size} x {g.size} ranks")
    _begin("all_gather", g, a)
    _account("all_gather", g, a.nbytes, (g.size - 1) * a.nbytes)
    req = g.comm.Iallgather(_mpi_view(a), _mpi_view(o))
    return _run(req, "all_gather", g, async_op, lambda: output._vc.__setitem__(0, output._vc[0] + 1))


def all_gather(tensor_list: list, tensor: Tensor, group: ProcessGroup | None = None, async_op: bool = False):
    """torch's list form: tensor_list[i] receives rank i's `tensor`."""
    g = _group(group)
    if len(tensor_list) != g.size:
        raise ShapeError(f"all_gather: tensor_list has {len(tensor_list)} entries, expected one per rank ({g.size})")
    from ..creation import empty
    out = empty(g.size * tensor.numel(), dtype=tensor.dtype)

    def split():
        for i, t in enumerate(tensor_list):
            t._data[...] = out._data[i * tensor.numel():(i + 1) * tensor.numel()].reshape(t.shape)
    work = all_gather_into_tensor(out, tensor, group, async_op=True)
    work._finish = (lambda prev: (lambda: (prev(), split())))(work._finish)
    if async_op:
        return work
    work.wait()
    return None


def broadcast(tensor: Tensor, src: int = 0, group: ProcessGroup | None = None, async_op: bool = False):
    """Copy `tensor` from group rank `src` to every rank (in place)."""
    g = _group(group)
    a = _buf(tensor, "broadcast")
    _begin("broadcast", g, a)
    _account("broadcast", g, a.nbytes, a.nbytes if g.rank == src else 0)
    req = g.comm.Ibcast(_mpi_view(a), root=src)
    return _run(req, "broadcast", g, async_op, lambda: tensor._vc.__setitem__(0, tensor._vc[0] + 1))


def reduce(tensor: Tensor, dst: int = 0, op: str = ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce onto group rank `dst` (in place there; other ranks' tensors are unchanged)."""
    g = _group(group)
    a = _buf(tensor, "reduce")
    _begin("reduce", g, a)
    _account("reduce", g, a.nbytes, a.nbytes)
    MPI = _mpi()
    send = MPI.IN_PLACE if g.rank == dst else a
    req = g.comm.Ireduce(send, a if g.rank == dst else None, op=_op(op, a, "reduce"), root=dst)

    def finish():
        if op == ReduceOp.AVG and g.rank == dst:
            a[...] /= g.size
    return _run(req, "reduce", g, async_op, finish)


def gather(tensor: Tensor, gather_list: list | None = None, dst: int = 0, group=None, async_op: bool = False):
    """Rank `dst` receives every rank's tensor into gather_list (rank order)."""
    g = _group(group)
    a = _buf(tensor, "gather")
    _begin("gather", g, a)
    _account("gather", g, a.nbytes, a.nbytes if g.rank != dst else 0)
    recv = np.empty((g.size,) + a.shape, a.dtype) if g.rank == dst else None
    req = g.comm.Igather(_mpi_view(a), _mpi_view(recv) if recv is not None else None, root=dst)

    def finish():
        if g.rank == dst:
            for i, t in enumerate(gather_list):
                t._data[...] = recv[i]
    return _run(req, "gather", g, async_op, finish)


def scatter(tensor: Tensor, scatter_list: list | None = None, src: int = 0, group=None, async_op: bool = False):
    """Rank i receives scatter_list[i] from rank `src` into `tensor`."""
    g = _group(group)
    a = _buf(tensor, "scatter")
    _begin("scatter", g, a)
    send = None
    if g.rank == src:
        send = np.stack([t._data for t in scatter_list]).astype(a.dtype, copy=False)
    _account("scatter", g, a.nbytes, a.nbytes * (g.size - 1) if g.rank == src else 0)
    req = g.comm.Iscatter(_mpi_view(send) if send is not None else None, _mpi_view(a), root=src)
    return _run(req, "scatter", g, async_op)


def all_to_all_single(output: Tensor, input: Tensor, output_split_sizes=None, input_split_sizes=None,
                      group=None, async_op: bool = False):
    """Rank i sends rows input[split_i] to each rank j and receives rank j's rows in order.

    Splits count rows of dim 0 and may be uneven (None: equal)."""
    g = _group(group)
    a, o = _buf(input, "all_to_all"), _buf(output, "all_to_all")
    n = g.size
    row_in = a[0].size if a.ndim else 1
    row_out = o[0].size if o.ndim else 1
    ins = list(input_split_sizes) if input_split_sizes is not None else [a.shape[0] // n] * n
    outs = list(output_split_sizes) if output_split_sizes is not None else [o.shape[0] // n] * n
    if sum(ins) != a.shape[0] or sum(outs) != o.shape[0] or len(ins) != n or len(outs) != n:
        raise ShapeError(f"all_to_all: split sizes {ins} / {outs} do not match input rows {a.shape[0]} / "
                         f"output rows {o.shape[0]} over {n} ranks")
    _graph_break("all_to_all")
    _enter(g)
    _account("all_to_all", g, a.nbytes, a.nbytes - ins[g.rank] * row_in * a.itemsize)
    sc = [c * row_in for c in ins]
    rc = [c * row_out for c in outs]
    sd = np.concatenate([[0], np.cumsum(sc)[:-1]]).astype(int).tolist()
    rd = np.concatenate([[0], np.cumsum(rc)[:-1]]).astype(int).tolist()
    req = g.comm.Ialltoallv([_mpi_view(a), (sc, sd)], [_mpi_view(o), (rc, rd)])
    return _run(req, "all_to_all", g, async_op)


def all_to_all(output_tensor_list: list, input_tensor_list: list, group=None, async_op: bool = False):
    """torch's list form: output_tensor_list[j] receives rank j's input_tensor_list[me]."""
    from ..creation import empty
    from ..ops import cat
    flat_in = cat([t.reshape(-1) for t in input_tensor_list]).contiguous()
    flat_out = empty(sum(t.numel() for t in output_tensor_list), dtype=flat_in.dtype)
    all_to_all_single(flat_out, flat_in, [t.numel() for t in output_tensor_list],
                      [t.numel() for t in input_tensor_list], group)
    start = 0
    for t in output_tensor_list:
        t._data[...] = flat_out._data[start:start + t.numel()].reshape(t.shape)
        start += t.numel()


def send(tensor: Tensor, dst: int, group=None, tag: int = 0) -> None:
    """Blocking point-to-point send to group rank `dst`."""
    isend(tensor, dst, group, tag).wait()


def recv(tensor: Tensor, src: int, group=None, tag: int = 0) -> None:
    """Blocking receive from group rank `src` into `tensor`."""
    irecv(tensor, src, group, tag).wait()


def isend(tensor: Tensor, dst: int, group=None, tag: int = 0) -> Work:
    _graph_break("send")
    g = _group(group)
    a = _buf(tensor, "send")
    _account("send", g, a.nbytes, a.nbytes)
    return Work(g.comm.Isend(_mpi_view(a), dest=dst, tag=tag), f"send to {dst}", g)


def irecv(tensor: Tensor, src: int, group=None, tag: int = 0) -> Work:
    _graph_break("recv")
    g = _group(group)
    a = _buf(tensor, "recv")
    _account("recv", g, a.nbytes, 0)
    return Work(g.comm.Irecv(_mpi_view(a), source=src, tag=tag), f"recv from {src}", g,
                lambda: tensor._vc.__setitem__(0, tensor._vc[0] + 1))


def recv_any(tensor: Tensor, tag: int, group=None) -> int:
    """Receive a message with `tag` from whichever rank sends first; returns that rank.
    ember-specific: torch.distributed.recv(src=None) does the same and also returns the sender."""
    g = _group(group)
    a = _buf(tensor, "recv")
    status = _mpi().Status()
    g.comm.Recv(_mpi_view(a), source=_mpi().ANY_SOURCE, tag=tag, status=status)
    _account("recv", g, a.nbytes, 0)
    tensor._vc[0] += 1
    return status.Get_source()


def barrier(group: ProcessGroup | None = None) -> None:
    """Wait until every rank of the group arrives (under the watchdog)."""
    g = _group(group)
    _graph_break("barrier")
    _enter(g)
    _account("barrier", g, 0, 0)
    _wait(g.comm.Ibarrier(), "barrier", g)


def broadcast_object(obj, src: int = 0, group=None):
    """A picklable Python object from `src` to every rank (small control data only)."""
    g = _group(group)
    return g.comm.bcast(obj, root=src)


def all_gather_object(obj, group=None) -> list:
    g = _group(group)
    return g.comm.allgather(obj)
