"""MultiheadAttention with PyTorch's parameters (in_proj_weight, in_proj_bias, out_proj) and masks."""

from __future__ import annotations

import math

from ...creation import ones, zeros
from ...dtype import bool_
from ...errors import ShapeError
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ._util import new_param
from .linear import Linear


def _as_additive(mask: Tensor | None, like: Tensor, what: str) -> Tensor | None:
    """A boolean mask (True = may not attend) or a float mask (added to scores) as a float mask."""
    if mask is None:
        return None
    if mask.dtype.category == 0:
        return zeros(mask.shape, dtype=like.dtype).masked_fill(mask, float("-inf"))
    if not mask.dtype.is_floating_point:
        raise TypeError(f"MultiheadAttention: {what} must be a bool or floating tensor, got {mask.dtype}")
    return mask.to(like.dtype)


class MultiheadAttention(Module):
    """Attention over `num_heads` heads of size embed_dim // num_heads (Vaswani et al., 2017).

    query (L, N, E) and key/value (S, N, E) ((N, L, E) with batch_first; unbatched (L, E)).
    key_padding_mask (N, S): True (or -inf) marks keys to ignore. attn_mask (L, S) or (N*heads, L, S):
    True (or -inf) forbids a position. Returns (output like query, attention weights (N, L, S) averaged
    over heads, (N, heads, L, S) if not average_attn_weights, or None if not need_weights).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.batch_first = batch_first
        kw = dict(dtype=dtype, device=device)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = new_param(3 * embed_dim, embed_dim, **kw)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = new_param(embed_dim, embed_dim, **kw)
            self.k_proj_weight = new_param(embed_dim, self.kdim, **kw)
            self.v_proj_weight = new_param(embed_dim, self.vdim, **kw)
        if bias:
            self.in_proj_bias = new_param(3 * embed_dim, **kw)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, **kw)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _project(self, query: Tensor, key: Tensor, value: Tensor):
        """Query, key and value projections; one fused matmul for self-attention (as torch)."""
        E = self.embed_dim
        b = self.in_proj_bias
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if query is key and key is value:
                return F.linear(query, w, b).chunk(3, -1)
            if key is value:
                k, v = F.linear(key, w[E:], None if b is None else b[E:]).chunk(2, -1)
                return F.linear(query, w[:E], None if b is None else b[:E]), k, v
            wq, wk, wv = w.chunk(3)
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        bq, bk, bv = (None, None, None) if b is None else b.chunk(3)
        return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False):
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(f"MultiheadAttention: query, key and value must all be 3-D (batched) or 2-D "
                             f"(unbatched), got {tuple(query.shape)}, {tuple(key.shape)}, "
                             f"{tuple(value.shape)}")
        same = query is key, key is value
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        if same[0]:
            key = query  # keep identity so the fused projection applies
        if same[1]:
            value = key
        N, L, E = query.shape
        S = key.shape[1]
        if E != self.embed_dim:
            raise ShapeError(f"MultiheadAttention: query has embedding size {E}, expected "
                             f"embed_dim={self.embed_dim}")
        H, d = self.num_heads, self.head_dim
        q, k, v = self._project(query, key, value)
        q = q.reshape(N, L, H, d).transpose(1, 2)  # (N, H, L, d)
        k = k.reshape(N, S, H, d).transpose(1, 2)
        v = v.reshape(N, S, H, d).transpose(1, 2)

        mask = self._merge_masks(attn_mask, key_padding_mask, is_causal, q, N, L, S)
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
            if mask is not None:
                scores = scores + mask
            weights = F.softmax(scores, -1)
            if dropout_p > 0.0:
                weights = F.dropout(weights, dropout_p, True)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        out = self.out_proj(out.transpose(1, 2).reshape(N, L, E))
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        return out, weights if batched else weights.squeeze(0)

    def _merge_masks(self, attn_mask, key_padding_mask, is_causal, like, N, L, S):
        """attn_mask and key_padding_mask combined into one additive (N or 1, H or 1, L, S) mask."""
        if attn_mask is None and is_causal:
            attn_mask = ones(L, S, dtype=bool_).triu(1)
        mask = _as_additive(attn_mask, like, "attn_mask")
        if mask is not None:
            if mask.ndim == 2:
                if tuple(mask.shape) != (L, S):
                    raise ShapeError(f"MultiheadAttention: the shape of the 2D attn_mask is "
                                     f"{tuple(mask.shape)}, "
                                     f"but should be {(L, S)}")
                mask = mask.reshape(1, 1, L, S)
            elif mask.ndim == 3:
                if tuple(mask.shape) != (N * self.num_heads, L, S):
                    raise ShapeError(f"MultiheadAttention: the shape of the 3D attn_mask is "
                                     f"{tuple(mask.shape)}, "
                                     f"but should be {(N * self.num_heads, L, S)}")
                mask = mask.reshape(N, self.num_heads, L, S)
            else:
                raise ShapeError(f"MultiheadAttention: attn_mask must be 2-D or 3-D, got shape "
                                 f"{tuple(mask.shape)}")
        kpm = _as_additive(key_padding_mask, like, "key_padding_mask")
        if kpm is not None:
            if tuple(kpm.shape) != (N, S):
                raise ShapeError(f"MultiheadAttention: expected key_padding_mask of shape {(N, S)}, got "
                                 f"{tuple(kpm.shape)}")
            kpm = kpm.reshape(N, 1, 1, S)
            mask = kpm if mask is None else mask + kpm
        return mask
