"""Fused scaled-dot-product attention: one op for softmax(scale * q k^T [+ causal mask]) v.

Written as separate ops (matmul, mask, softmax, matmul) attention makes four passes over the
(L, S) scores each way; as one op the compiler can hand it to a single library kernel per head
(compiler/attention.c), the way PyTorch runs its fused CPU attention. The eager kernel here is
NumPy; the backward is one op too, computing dq, dk, dv together from the saved probabilities.
Double backward (create_graph) recomputes attention with differentiable ops.
"""

from __future__ import annotations

import math

from ..autograd import _Mode
from ._util import Tensor, apply
from .registry import OPAQUE, Op, register

_MASKS: dict = {}


def _causal_bias(xp, L: int, S: int, dtype):
    """(L, S) array of 0 where key j <= query i (top-left aligned, as torch) and -inf above."""
    key = (xp.__name__, L, S, str(dtype))
    if key not in _MASKS:
        _MASKS[key] = xp.triu(xp.full((L, S), -xp.inf, dtype), 1)
    return _MASKS[key]


def _stack(xp, a):
    # NumPy hands a stack of matrices to BLAS only when it is C-contiguous (see ops/linalg.py)
    return a if a.flags.c_contiguous else xp.ascontiguousarray(a)


@register("sdpa", OPAQUE)
class ScaledDotProductAttention(Op):
    """(B, H, L, E) q, (B, H, S, E) k, (B, H, S, Ev) v -> (B, H, L, Ev); saves the (B, H, L, S)
    probabilities. The output is contiguous, as PyTorch's; the compiler's library kernel writes it
    laid out (B, L, H, Ev) instead, where merging the heads then needs no copy (compiler/library.py)."""

    saves = True

    def shape(q, k, v, scale, causal):
        return q.shape[:-1] + (v.shape[-1],)

    def forward(xp, q, k, v, scale, causal):
        s = xp.matmul(_stack(xp, q), _stack(xp, xp.swapaxes(k, -1, -2)))
        s *= scale
        if causal:
            s += _causal_bias(xp, s.shape[-2], s.shape[-1], s.dtype)
        s -= s.max(axis=-1, keepdims=True)
        xp.exp(s, out=s)
        s /= s.sum(axis=-1, keepdims=True)
        return xp.matmul(s, _stack(xp, v)), s

    def backward(ctx, g):
        q, k, v = ctx.inputs
        if _Mode.enabled:  # create_graph: the probabilities must depend on q and k
            return _differentiable_grads(g, q, k, v, ctx.scale, ctx.causal)
        p = Tensor._make(ctx.saved.astype(g.dtype.np, copy=False), g.dtype, g.device)
        grads = apply(ScaledDotProductAttentionBackward, g, q, k, v, p, scale=ctx.scale, causal=ctx.causal)
        return grads[0], grads[1], grads[2]

    def flops(out_shape, q, k, v, scale, causal):
        return 2 * math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])


@register("sdpa_backward", OPAQUE)
class ScaledDotProductAttentionBackward(Op):
    """(g, q, k, v, p) -> (3, B, H, L, E): the gradients of q, k and v stacked (needs L == S and
    E == Ev, which `sdpa` checks before choosing this op). The compiler's library kernel lays them
    out (B, L, 3, H, E), each row holding dq, dk, dv side by side: the gradient of a fused
    (B, L, 3 * H * E) qkv projection, handed out without assembling it. `causal` only tells a kernel
    that p is zero above the diagonal (the library's skips those blocks); the formula is the same."""

    differentiable = False  # double backward goes through _differentiable_grads instead

    def shape(g, q, k, v, p, scale, causal):
        return (3,) + q.shape

    def forward(xp, g, q, k, v, p, scale, causal):
        out = xp.empty((3,) + q.shape, dtype=g.dtype)
        g = _stack(xp, g)
        xp.matmul(xp.swapaxes(p, -1, -2), g, out=out[2])  # dv = p^T g
        dp = xp.matmul(g, _stack(xp, xp.swapaxes(v, -1, -2)))
        dp -= (p * dp).sum(axis=-1, keepdims=True)
        dp *= p  # ds = p * (dp - rowsum(p * dp))
        dp *= scale
        xp.matmul(dp, _stack(xp, k), out=out[0])
        xp.matmul(xp.swapaxes(dp, -1, -2), _stack(xp, q), out=out[1])
        return out

    def flops(out_shape, g, q, k, v, p, scale, causal):
        return 8 * math.prod(q.shape[:-1]) * k.shape[-2] * q.shape[-1]


@register("sdpa_backward_sum", OPAQUE)
class ScaledDotProductAttentionBackwardSum(Op):
    """(grads, bias gradient): sdpa_backward's (3, B, H, L, E) gradients and their sum over B and L,
    laid out (3, H, E): the bias gradient of the fused qkv projection those gradients flow into.
    Only the compiler makes it (passes/epilogue.py), so the library kernel sums each head's rows
    while they are in cache instead of a column sum reading the whole gradient again."""

    saves = True
    differentiable = False

    def shape(g, q, k, v, p, scale, causal):
        return (3,) + q.shape

    def forward(xp, g, q, k, v, p, scale, causal):
        out = ScaledDotProductAttentionBackward.forward(xp, g, q, k, v, p, scale, causal)
        return out, out.sum(axis=(1, 3))

    def flops(out_shape, g, q, k, v, p, scale, causal):
        return 8 * math.prod(q.shape[:-1]) * k.shape[-2] * q.shape[-1] + math.prod(out_shape)


def _differentiable_grads(g, q, k, v, scale, causal):
    """dq, dk, dv written with ember ops, so that they record a graph (second derivatives)."""
    from ..creation import ones
    from .nn import softmax
    s = (q * scale) @ k.mT
    if causal:
        s = s.masked_fill(ones(s.shape[-2], s.shape[-1], dtype=s.dtype).tril() == 0, float("-inf"))
    p = softmax(s, -1)
    dp = g @ v.mT
    ds = p * (dp - (p * dp).sum(-1, keepdim=True))
    return (ds @ k) * scale, (ds.mT @ q) * scale, p.mT @ g


def sdpa(q: Tensor, k: Tensor, v: Tensor, scale: float, causal: bool) -> Tensor:
    """The fused attention op; callers (F.scaled_dot_product_attention) check shapes and dtypes."""
    return apply(ScaledDotProductAttention, q, k, v, scale=float(scale), causal=bool(causal))


def fusable(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """Whether the fused op (and its one-op backward) covers these inputs: 4-D, one shape, float."""
    return (q.ndim == 4 and q.shape == k.shape == v.shape and q.dtype is k.dtype is v.dtype
            and q.dtype.is_floating_point and q.numel() > 0)
