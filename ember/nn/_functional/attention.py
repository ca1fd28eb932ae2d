"""scaled_dot_product_attention: the fused `sdpa` op where it applies (4-D, same shapes, no mask or
dropout), else written with ember ops (matmul, the fused softmax, dropout)."""

from __future__ import annotations

import math

from ... import amp as _amp
from ... import creation
from ... import dtype as dt
from ...errors import DTypeError, ShapeError, fmt_shape
from ...ops import attention as _attention
from ...ops import linalg as _linalg
from ...ops import nn as _nnops
from ...tensor import Tensor


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(q k^T * scale + mask) v.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev).  attn_mask broadcasts to
    (..., L, S): bool (True = may attend) or float (added to the scores).  is_causal masks future
    keys (top-left aligned, as torch).  scale defaults to 1/sqrt(E).  enable_gqa lets key/value have
    fewer heads (dim -3) than query, each shared by a group of query heads.
    """
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ShapeError("scaled_dot_product_attention: query, key and value need at least 2 dims "
                         f"(..., L, E), got {fmt_shape(query.shape)}, {fmt_shape(key.shape)}, "
                         f"{fmt_shape(value.shape)}")
    if query.shape[-1] != key.shape[-1]:
        raise ShapeError(f"scaled_dot_product_attention: query {fmt_shape(query.shape)} and key "
                         f"{fmt_shape(key.shape)} must have the same embedding size (last dim)")
    if key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: key {fmt_shape(key.shape)} and value "
                         f"{fmt_shape(value.shape)} must have the same sequence length (dim -2)")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        hq, hk = query.shape[-3], key.shape[-3]
        if hq % hk:
            raise ShapeError(f"scaled_dot_product_attention: {hq} query heads are not a multiple of {hk} "
                             "key/value heads")
        key, value = (_repeat_heads(t, hq // hk) for t in (key, value))
    L, S = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    if attn_mask is None and dropout_p == 0.0 and _attention.fusable(query, key, value):
        query, key = _amp.cast_pair(query, key)  # autocast: attention runs in the low dtype, as torch's
        value = _amp.cast_pair(value, value)[0]
        return _attention.sdpa(query, key, value, scale, is_causal)  # one op (ops/attention.py)
    scores = _linalg.matmul(query * scale, key.mT)  # scaling q costs L*E, not L*S
    # masks are applied as an additive 0 / -inf bias: a broadcast add is far cheaper than a
    # broadcast `where` over the (..., L, S) scores, and only the small mask is converted
    if is_causal:
        scores = scores + _additive(creation.ones(L, S, dtype=dt.bool_).tril(), scores)
    elif attn_mask is not None:
        if attn_mask.dtype is dt.bool_:
            scores = scores + _additive(attn_mask, scores)
        elif attn_mask.dtype.is_floating_point:
            scores = scores + attn_mask.to(scores.dtype)
        else:
            raise DTypeError(f"scaled_dot_product_attention: attn_mask must be bool or float, got "
                             f"{attn_mask.dtype}")
    attn = _nnops.softmax(scores, -1)
    if dropout_p > 0.0:
        from .basic import dropout
        attn = dropout(attn, dropout_p, True)
    return _linalg.matmul(attn, value)


def _additive(allowed: Tensor, like: Tensor) -> Tensor:
    """A bool mask (True = may attend) as 0 / -inf in like's dtype."""
    zero = creation.zeros(allowed.shape, dtype=like.dtype)
    return zero.masked_fill(allowed.logical_not(), float("-inf"))


def _repeat_heads(t: Tensor, n: int) -> Tensor:
    """(..., H, S, E) -> (..., H*n, S, E), each head repeated n times in place (repeat_interleave)."""
    *lead, H, S, E = t.shape
    return t.unsqueeze(-3).expand(*lead, H, n, S, E).reshape(*lead, H * n, S, E)
