"""DistributedDataParallel: replicate a module on every rank and average gradients in buckets.

Gradients are grouped into buckets in reverse registration order (roughly the order backward
produces them). Each parameter's post-accumulate-grad hook marks it ready; when a bucket is
complete its all-reduce starts at once, asynchronously, overlapping with the rest of
backward. Buckets launch in index order on every rank (MPI matches collectives by order).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from ..autograd import AccumulateGrad, is_grad_enabled, no_grad
from ..nn.module import Module
from ..ops import cat
from ..tensor import Tensor
from . import comm


@dataclass
class GradBucket:
    """One bucket: its parameters, their offsets in the flat buffer, and the flat gradient."""

    index: int
    params: list
    offsets: list
    numel: int
    flat: Tensor | None = None
    ready: set = field(default_factory=set)
    work: object = None

    def buffer(self) -> Tensor:
        return self.flat

    def parameters(self) -> list:
        return self.params


class _Future:
    """What a communication hook returns: `wait()` gives the reduced flat gradient."""

    def __init__(self, work, value_fn):
        self._work, self._value_fn = work, value_fn

    def wait(self) -> Tensor:
        if self._work is not None:
            self._work.wait()
        return self._value_fn()


def allreduce_hook(group, bucket: GradBucket) -> _Future:
    """The default communication hook: average the bucket's gradient over the group."""
    flat = bucket.buffer()
    work = comm.all_reduce(flat, comm.ReduceOp.AVG, group=group, async_op=True)
    return _Future(work, lambda: flat)


class DistributedDataParallel(Module):
    """Data parallelism: `DistributedDataParallel(model)(x)` as torch's DDP.

    Parameters and buffers are broadcast from rank 0 at wrap time. After `loss.backward()`
    every rank's `.grad` holds the gradient averaged over ranks. `no_sync()` skips the
    reduction for gradient accumulation; `find_unused_parameters=True` marks parameters
    that the forward did not reach as ready (their gradient counts as zero).
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25, group=None,
                 find_unused_parameters: bool = False, broadcast_buffers: bool = True):
        super().__init__()
        comm.init()
        self.module = module
        object.__setattr__(self, "group", group or comm._group(None))
        object.__setattr__(self, "find_unused_parameters", find_unused_parameters)
        object.__setattr__(self, "broadcast_buffers", broadcast_buffers)
        object.__setattr__(self, "_sync", True)
        object.__setattr__(self, "_hook", allreduce_hook)
        object.__setattr__(self, "_hook_state", self.group)
        with no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                comm.broadcast(t, 0, self.group)
        params = [p for p in module.parameters() if p.requires_grad]
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "buckets", self._make_buckets(params, bucket_cap_mb * 2**20))
        object.__setattr__(self, "_bucket_of", {id(p): b for b in self.buckets for p in b.params})
        object.__setattr__(self, "_next", 0)
        object.__setattr__(self, "_pending", False)
        for p in params:
            p.register_post_accumulate_grad_hook(self._on_grad_ready)

    @staticmethod
    def _make_buckets(params, cap_bytes) -> list:
        """Greedy packing in reverse registration order, one dtype per bucket."""
        buckets, cur, offs, size, nbytes = [], [], [], 0, 0
        for p in reversed(params):
            if cur and (nbytes + p.nbytes > cap_bytes or p.dtype is not cur[0].dtype):
                buckets.append(GradBucket(len(buckets), cur, offs, size))
                cur, offs, size, nbytes = [], [], 0, 0
            cur.append(p)
            offs.append(size)
            size += p.numel()
            nbytes += p.nbytes
        if cur:
            buckets.append(GradBucket(len(buckets), cur, offs, size))
        return buckets

    def register_comm_hook(self, state, hook) -> None:
        """Replace the all-reduce by `hook(state, bucket) -> future with wait() -> flat gradient`
        (compression hooks live in ember.distributed.compression)."""
        object.__setattr__(self, "_hook", hook)
        object.__setattr__(self, "_hook_state", state)

    @contextlib.contextmanager
    def no_sync(self):
        """Accumulate gradients locally; the first backward outside the block reduces the sum."""
        prev = self._sync
        object.__setattr__(self, "_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "_sync", prev)

    # --- forward ---------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        if self._pending:
            missing = [n for n, p in self.module.named_parameters()
                       if p.requires_grad and id(p) not in self._bucket_of[id(p)].ready]
            raise comm.DistributedError(
                "DistributedDataParallel: the previous iteration's gradient reduction did not finish; "
                f"parameters that received no gradient: {missing[:8]}{' ...' if len(missing) > 8 else ''}. "
                "Pass find_unused_parameters=True if some parameters are not used in every forward")
        if self.broadcast_buffers and self.training:
            with no_grad():
                for b in self.module.buffers():
                    comm.broadcast(b, 0, self.group)
        out = self.module(*args, **kwargs)
        if self._sync and is_grad_enabled():
            self._prepare(out)
        return out

    def _prepare(self, out) -> None:
        for b in self.buckets:
            b.ready.clear()
            b.work = None
        object.__setattr__(self, "_next", 0)
        object.__setattr__(self, "_pending", True)
        if self.find_unused_parameters:
            used = _reachable_leaves(out)
            for p in self._params:
                if id(p) not in used:
                    self._mark_ready(p)

    # --- backward: hooks and buckets ---------------------------------------------------------
    def _on_grad_ready(self, p: Tensor) -> None:
        if self._sync and self._pending:
            self._progress()
            self._mark_ready(p)

    def _progress(self) -> None:
        """Give launched all-reduces a turn: MPI moves data only inside MPI calls, so without this
        they would sit idle until backward ends (no progress thread on a busy 2-core laptop)."""
        for b in self.buckets[:self._next]:
            work = getattr(b.work, "_work", None)
            if work is not None:
                work.is_completed()

    def _mark_ready(self, p: Tensor) -> None:
        b = self._bucket_of[id(p)]
        b.ready.add(id(p))
        # launch, in index order, every bucket that is now complete
        while self._next < len(self.buckets) and len(self.buckets[self._next].ready) == len(
                self.buckets[self._next].params):
            self._launch(self.buckets[self._next])
            object.__setattr__(self, "_next", self._next + 1)
        if self._next == len(self.buckets):
            self._finish()

    def _launch(self, b: GradBucket) -> None:
        with no_grad():
            b.flat = cat([(p.grad if p.grad is not None else p.detach() * 0).reshape(-1) for p in b.params])
        b.work = self._hook(self._hook_state, b)

    def _finish(self) -> None:
        with no_grad():
            for b in self.buckets:
                flat = b.work.wait()
                for p, off in zip(b.params, b.offsets):
                    g = flat[off:off + p.numel()].reshape(p.shape)
                    if p.grad is None:
                        p.grad = g.clone()
                    else:
                        p.grad.copy_(g)
                b.work = None
        object.__setattr__(self, "_pending", False)

    # state_dict of DDP is the wrapped module's with a "module." prefix, as in torch


def _reachable_leaves(out) -> set:
    """ids of leaf tensors that the autograd graph behind `out` reaches."""
    roots = []

    def collect(x):
        if isinstance(x, Tensor):
            roots.append(x)
        elif isinstance(x, (list, tuple)):
            for y in x:
                collect(y)
        elif isinstance(x, dict):
            for y in x.values():
                collect(y)
    collect(out)
    seen, leaves = set(), set()
    stack = [t.grad_fn for t in roots if t.grad_fn is not None]
    stack += [t._acc() for t in roots if t.grad_fn is None and t._acc is not None and t._acc() is not None]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, AccumulateGrad):
            leaves.add(id(node.variable))
            continue
        stack.extend(p for p in node.parents if p is not None)
    return leaves
