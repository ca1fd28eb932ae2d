"""Ordering: argsort, sort and topk. The index ops are not differentiable; values are gathered
through `gather`, so their gradient flows back to the chosen positions."""

from __future__ import annotations

from collections import namedtuple

from .. import dtype as dt
from ..errors import ShapeError
from ._util import Tensor, apply, norm_dim
from .registry import REDUCE, Op, register


@register("argsort", REDUCE)
class Argsort(Op):
    differentiable = False
    upcast = False

    def dtype(x, dim, descending):
        return dt.int64

    def forward(xp, x, dim, descending):
        # stable sort; descending via negation keeps ties in index order (as torch's stable=True)
        key = -x if descending and x.dtype.kind in "fi" else x
        idx = xp.argsort(key, axis=dim, kind="stable")
        return idx if key is not x or not descending else xp.flip(idx, axis=dim)


@register("topk_indices", REDUCE)
class TopkIndices(Op):
    differentiable = False
    upcast = False

    def dtype(x, k, dim, largest):
        return dt.int64

    def forward(xp, x, k, dim, largest):
        key = -x if largest else x
        part = xp.argpartition(key, k - 1, axis=dim) if k < x.shape[dim] else xp.argsort(key, axis=dim)
        part = xp.take(part, xp.arange(k), axis=dim)
        vals = xp.take_along_axis(key, part, axis=dim)
        order = xp.argsort(vals, axis=dim, kind="stable")
        return xp.take_along_axis(part, order, axis=dim)


def argsort(x: Tensor, dim: int = -1, descending: bool = False) -> Tensor:
    """Indices that sort x along `dim` (stable)."""
    return apply(Argsort, x, dim=norm_dim(dim, x.ndim, "argsort"), descending=descending)


SortResult = namedtuple("SortResult", ["values", "indices"])


def sort(x: Tensor, dim: int = -1, descending: bool = False):
    """(values, indices) of x sorted along `dim`; values are differentiable."""
    idx = argsort(x, dim, descending)
    return SortResult(x.gather(dim, idx), idx)


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """(values, indices) of the k largest (or smallest) entries along `dim`, best first."""
    d = norm_dim(dim, x.ndim, "topk")
    n = x.shape[d] if x.ndim else 1
    if not 0 <= k <= n:
        raise ShapeError(f"topk: k={k} is out of range for dimension {d} of size {n}")
    if k == 0:
        idx = x.argmax(d, keepdim=True)[..., :0] if x.ndim else x.long()
        return SortResult(x.gather(d, idx), idx)
    idx = apply(TopkIndices, x, k=k, dim=d, largest=largest)
    return SortResult(x.gather(d, idx), idx)
