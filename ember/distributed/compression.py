"""Gradient compression as DDP communication hooks: fp16/bf16, top-k (DGC), PowerSGD, TernGrad.

Each hook has DDP's signature `hook(state, bucket) -> future` (`future.wait()` gives the
bucket's averaged flat gradient) and keeps what it needs between steps (error feedback,
momentum, PowerSGD's Q) in its state object, keyed by bucket index. Every state records
`ratio`: payload bytes it sent over the bytes plain DDP would send for the same buckets.
"""

from __future__ import annotations

from .. import dtype as dt
from ..creation import arange, empty, randn, zeros
from ..ops import cat
from ..tensor import Tensor
from . import comm
from ._codec import CODECS, pack_bits, unpack_bits
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

    ratio: payload bytes relative to dense float32, counting every byte passed to collectives.
    values: how kept values travel: 'float32', 'float16' (2 bytes) or 'log8' (1 byte: sign and
    8 log2-steps per octave, plus one float32 scale); the rounding error stays in the residual.
    Positions travel as a bitmap (n/8 bytes, whatever k is) or as int32 indices, whichever keeps
    more entries within the budget. layerwise: the top entries of each parameter (k in proportion
    to its size) rather than of the whole bucket."""

    def __init__(self, ratio: float, momentum: float = 0.0, mask_momentum: bool = False, group=None,
                 values: str = "log8", layerwise: bool = False):
        super().__init__(group)
        self.mask_momentum = mask_momentum
        if not 0 < ratio <= 1:
            raise ValueError(f"TopKState.ratio must be in (0, 1], got {ratio}")
        if values not in CODECS:
            raise ValueError(f"TopKState.values must be one of {sorted(CODECS)}, got {values!r}")
        self.target, self.momentum = ratio, momentum
        self.codec, self.layerwise = CODECS[values], layerwise
        self.velocity: dict = {}
        self.residual: dict = {}


def topk_budget(n: int, ratio: float, value_bytes: float = 1, overhead: int = 4,
                elem_bytes: int = 4) -> tuple[int, bool]:
    """(k, bitmap) for a bucket of n entries: the most entries whose payload (k * value_bytes +
    overhead + positions) fits ratio * n * elem_bytes, positions being a bitmap (ceil(n/8) bytes)
    or int32 indices (4 bytes each)."""
    budget = int(ratio * n * elem_bytes) - overhead
    k_bitmap = int((budget - (n + 7) // 8) // value_bytes)
    k_index = int(budget // (value_bytes + 4))
    if k_bitmap > k_index:
        return min(n, k_bitmap), True
    return max(1, k_index), False  # at least one entry, even for a bucket too small for the budget


def topk_hook(state: TopKState, bucket: GradBucket) -> _Future:
    """Send each rank's top-k of its accumulated (velocity-corrected) gradient; `wait()` gives
    the average over ranks of what they sent (decoded), as a dense flat gradient of the bucket."""
    flat = bucket.buffer()
    i, n = bucket.index, flat.numel()
    if i not in state.residual:
        state.velocity[i] = zeros(n, dtype=flat.dtype)
        state.residual[i] = zeros(n, dtype=flat.dtype)
    u, v = state.velocity[i], state.residual[i]
    u.mul_(state.momentum).add_(flat)  # momentum correction
    v.add_(u)
    codec = state.codec
    k, bitmap = topk_budget(n, state.target, codec.per_value, codec.overhead, flat.element_size())
    segments = _segments(bucket, n) if state.layerwise else None
    idx = _topk_indices(v.abs(), k, segments)
    mask = zeros(n, dtype=dt.bool_)
    mask[idx] = True
    if bitmap:  # values in ascending position order: receivers recover the positions from the bitmap
        idx = arange(n)[mask]
    payloads, sent = codec.encode(v[idx].to(dt.float32))
    state.residual[i] = v.scatter_add(0, idx, -sent.to(flat.dtype))  # error feedback keeps rounding too
    if state.mask_momentum:  # DGC's momentum factor masking: off by default, since at full density it
        u.masked_fill_(mask, 0.0)  # would reset the momentum every step
    payloads.append(pack_bits(mask) if bitmap else idx.to(dt.int32).contiguous())
    g = state.group
    gathered, works = [], []
    for p in payloads:
        out = empty(p.numel() * g.size, dtype=p.dtype)
        works.append(comm.all_gather_into_tensor(out, p, g, async_op=True))
        gathered.append(out.reshape(g.size, -1))
        state.sent += p.nbytes
    state.dense += flat.nbytes

    def value():
        for w in works:
            w.wait()
        *vals, pos = gathered
        if bitmap:
            where = arange(n)
            all_idx = cat([where[unpack_bits(b, n)] for b in pos])
        else:
            all_idx = pos.reshape(-1).long()
        dense = zeros(n, dtype=flat.dtype)
        return dense.scatter_add(0, all_idx, codec.decode(vals, k).reshape(-1).to(flat.dtype)) / g.size
    return _Future(None, value)


def _segments(bucket: GradBucket, n: int) -> list:
    """(offset, size) of each parameter in the bucket's flat buffer, in offset order."""
    segs = sorted((off, p.numel()) for p, off in zip(bucket.params, bucket.offsets))
    return segs if segs and sum(s for _, s in segs) == n else [(0, n)]


def _topk_indices(x: Tensor, k: int, segments: list | None = None) -> Tensor:
    """Indices of k large entries of a 1-D tensor: the k largest overall, or with `segments`
    ((offset, size) pairs covering x), the largest of each segment with k split in proportion to
    the sizes (largest remainders get the leftover)."""
    if not segments or len(segments) == 1:
        return x.topk(k).indices
    n = x.numel()
    share = [k * s / n for _, s in segments]
    ks = [min(s, int(q)) for q, (_, s) in zip(share, segments)]
    for j in sorted(range(len(ks)), key=lambda j: ks[j] - share[j]):
        if sum(ks) >= k:
            break
        if ks[j] < segments[j][1]:
            ks[j] += 1
    parts = [x[off:off + s].topk(kj).indices + off for (off, s), kj in zip(segments, ks) if kj]
    return cat(parts)


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


__all__ = ["CastState", "fp16_compress_hook", "TopKState", "topk_hook", "topk_budget", "PowerSGDState", "powersgd_hook",
           "TernGradState", "terngrad_hook", "parse"]
