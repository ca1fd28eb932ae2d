"""Gradient compression as DDP communication hooks: fp16/bf16, top-k (DGC), PowerSGD, TernGrad.

Each hook has DDP's signature `hook(state, bucket) -> future` (`future.wait()` gives the
bucket's averaged flat gradient) and keeps what it needs between steps (error feedback,
momentum, PowerSGD's Q) in its state object, keyed by bucket index. Every state records
`ratio`: payload bytes it sent over the bytes plain DDP would send for the same buckets.
"""

from __future__ import annotations

from .. import dtype as dt
from ..creation import empty, randn, zeros
from ..ops import cat
from ..tensor import Tensor
from . import comm
from .ddp import GradBucket, _Future


class _State:
    def __init__(self, group=None):
        self.group = group or comm._group(None)
        self.sent = 0  # payload bytes this rank passed to collectives
        self.dense = 0  # what plain DDP would have passed

    @property
    def ratio(self) -> float:
        """Compression achieved so far: bytes sent / bytes plain DDP would send."""
        return self.sent / self.dense if self.dense else 1.0


class CastState(_State):
    def __init__(self, dtype=dt.float16, group=None):
        super().__init__(group)
        self.dtype = dtype


def fp16_compress_hook(state: CastState, bucket: GradBucket) -> _Future:
    """All-reduce the bucket in float16 (or state.dtype, e.g. bfloat16): half the bytes."""
    flat = bucket.buffer()
    low = flat.to(state.dtype).contiguous()
    state.sent += low.nbytes
    state.dense += flat.nbytes
    work = comm.all_reduce(low, comm.ReduceOp.SUM, state.group, async_op=True)
    n = state.group.size
    return _Future(work, lambda: low.to(flat.dtype) / n)


class TopKState(_State):
    """Deep Gradient Compression (Lin et al. 2018): send the largest entries of the accumulated
    gradient; keep the rest as residual (error feedback); momentum correction accumulates the
    velocity instead of the raw gradient, and masks it where values were sent.

    ratio: payload bytes relative to dense float32 (each kept entry costs 4 bytes of value and 4
    of index, so a ratio of 0.01 keeps 0.5% of the entries)."""

    def __init__(self, ratio: float, momentum: float = 0.0, mask_momentum: bool = False, group=None):
        super().__init__(group)
        self.mask_momentum = mask_momentum
        if not 0 < ratio <= 1:
            raise ValueError(f"TopKState.ratio must be in (0, 1], got {ratio}")
        self.target, self.momentum = ratio, momentum
        self.velocity: dict = {}
        self.residual: dict = {}


def topk_hook(state: TopKState, bucket: GradBucket) -> _Future:
    flat = bucket.buffer()
    i, n = bucket.index, flat.numel()
    if i not in state.residual:
        state.velocity[i] = zeros(n, dtype=flat.dtype)
        state.residual[i] = zeros(n, dtype=flat.dtype)
    u, v = state.velocity[i], state.residual[i]
    u.mul_(state.momentum).add_(flat)  # momentum correction
    v.add_(u)
    k = max(1, int(state.target * n * flat.element_size() / (flat.element_size() + 4)))
    idx = _topk_indices(v.abs(), k)
    vals = v[idx].contiguous()
    idx32 = idx.to(dt.int32).contiguous()
    mask = zeros(n, dtype=dt.bool_)
    mask[idx] = True
    v.masked_fill_(mask, 0.0)
    if state.mask_momentum:  # DGC's momentum factor masking: off by default, since at full density it
        u.masked_fill_(mask, 0.0)  # would reset the momentum every step
    g = state.group
    all_vals = empty(k * g.size, dtype=flat.dtype)
    all_idx = empty(k * g.size, dtype=dt.int32)
    w1 = comm.all_gather_into_tensor(all_vals, vals, g, async_op=True)
    w2 = comm.all_gather_into_tensor(all_idx, idx32, g, async_op=True)
    state.sent += vals.nbytes + idx32.nbytes
    state.dense += flat.nbytes

    def value():
        w1.wait()
        w2.wait()
        dense = zeros(n, dtype=flat.dtype)
        return dense.scatter_add(0, all_idx.long(), all_vals) / g.size
    return _Future(None, value)


def _topk_indices(x: Tensor, k: int) -> Tensor:
    """Indices of the k largest entries of a 1-D tensor."""
    return x.topk(k).indices


class PowerSGDState(_State):
    """PowerSGD (Vogels et al. 2019): each matrix-shaped gradient M (n x m) is sent as P = M Q and
    Q = M^T P of rank `rank`; the approximation error is fed back next step. Vectors and small
    matrices go uncompressed."""

    def __init__(self, rank: int = 2, group=None, seed: int = 0):
        super().__init__(group)
        self.rank, self.seed = rank, seed
        self.q: dict = {}
        self.error: dict = {}


def powersgd_hook(state: PowerSGDState, bucket: GradBucket) -> _Future:
    flat = bucket.buffer()
    g, r = state.group, state.rank
    out_parts = []
    if bucket.index not in state.error:
        state.error[bucket.index] = zeros(flat.numel(), dtype=flat.dtype)
    err = state.error[bucket.index]
    flat = flat + err
    new_err = zeros(flat.numel(), dtype=flat.dtype)
    for j, (p, off) in enumerate(zip(bucket.params, bucket.offsets)):
        piece = flat[off:off + p.numel()]
        n = p.shape[0] if p.ndim >= 2 else 1
        m = p.numel() // n
        if p.ndim < 2 or (n + m) * r >= n * m:
            t = piece.contiguous()
            comm.all_reduce(t, comm.ReduceOp.AVG, g)
            state.sent += t.nbytes
            out_parts.append(t)
            continue
        M = piece.reshape(n, m)
        key = (bucket.index, j)
        if key not in state.q:
            from ..random import Generator
            state.q[key] = randn(m, r, generator=Generator(state.seed + 7919 * j + bucket.index), dtype=flat.dtype)
        P = (M @ state.q[key]).contiguous()
        comm.all_reduce(P, comm.ReduceOp.AVG, g)
        P = _orthonormalize(P)
        Q = (M.mT @ P).contiguous()
        comm.all_reduce(Q, comm.ReduceOp.AVG, g)
        state.q[key] = Q
        approx = (P @ Q.mT).reshape(-1)
        state.sent += P.nbytes + Q.nbytes
        new_err[off:off + p.numel()] = (piece - approx)
        out_parts.append(approx)
    state.dense += bucket.buffer().nbytes
    state.error[bucket.index] = new_err
    result = cat(out_parts)
    return _Future(None, lambda: result)


def _orthonormalize(P: Tensor) -> Tensor:
    """Gram-Schmidt on the columns of P (n x r), with ember ops."""
    cols = []
    for i in range(P.shape[1]):
        c = P[:, i]
        for q in cols:
            c = c - (c * q).sum() * q
        cols.append(c / ((c * c).sum().sqrt() + 1e-8))
    return cat([c.reshape(-1, 1) for c in cols], 1).contiguous()


class TernGradState(_State):
    """TernGrad (Wen et al. 2017): each rank sends sign(g) * Bernoulli(|g| / max|g|) as int8 plus
    its scale max|g|; the average of the unbiased ternary estimates replaces the gradient."""

    def __init__(self, group=None, seed: int = 0):
        super().__init__(group)
        from ..random import Generator
        self.gen = Generator(seed).fork(comm.get_rank())


def terngrad_hook(state: TernGradState, bucket: GradBucket) -> _Future:
    from ..creation import rand
    flat = bucket.buffer()
    g = state.group
    s = flat.abs().amax().reshape(1).contiguous()
    prob = flat.abs() / (s + 1e-30)
    keep = (rand(flat.numel(), generator=state.gen, dtype=flat.dtype) < prob)
    tern = (flat.sign() * keep.to(flat.dtype)).to(dt.int8).contiguous()
    all_t = empty(flat.numel() * g.size, dtype=dt.int8)
    all_s = empty(g.size, dtype=flat.dtype)
    comm.all_gather_into_tensor(all_t, tern, g)
    comm.all_gather_into_tensor(all_s, s, g)
    state.sent += tern.nbytes + s.nbytes
    state.dense += flat.nbytes
    est = (all_t.reshape(g.size, -1).to(flat.dtype) * all_s.reshape(-1, 1)).sum(0) / g.size
    return _Future(None, lambda: est)


def parse(spec: str, group=None):
    """`--compress` values: 'fp16', 'bf16', 'topk:RATIO', 'dgc:RATIO' (top-k with momentum correction, for
    SGD), 'powersgd:RANK', 'terngrad' -> (state, hook)."""
    name, _, arg = spec.partition(":")
    if name in ("fp16", "bf16"):
        return CastState(dt.float16 if name == "fp16" else dt.bfloat16, group), fp16_compress_hook
    if name == "topk":
        return TopKState(float(arg or 0.01), group=group), topk_hook
    if name == "dgc":
        return TopKState(float(arg or 0.01), momentum=0.9, group=group), topk_hook
    if name == "powersgd":
        return PowerSGDState(int(arg or 2), group), powersgd_hook
    if name == "terngrad":
        return TernGradState(group), terngrad_hook
    raise ValueError(f"--compress: unknown scheme {spec!r}; expected fp16, bf16, topk:RATIO, dgc:RATIO, "
                     "powersgd:RANK or terngrad")


__all__ = ["CastState", "fp16_compress_hook", "TopKState", "topk_hook", "PowerSGDState", "powersgd_hook",
           "TernGradState", "terngrad_hook", "parse"]
