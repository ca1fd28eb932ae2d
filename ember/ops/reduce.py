"""Reductions over `dim` (an int, a tuple, or None for all) with `keepdim`, as in PyTorch."""

from __future__ import annotations

import builtins
import math
from collections import namedtuple

from .. import dtype as dt
from ..errors import DTypeError, ShapeError
from ._util import Tensor, apply, float_input, norm_dim, norm_dims
from .indexing import Gather as _Gather
from .registry import REDUCE, Op, register


def _reduced_shape(shape, dims, keepdim):
    if keepdim:
        return tuple(1 if i in dims else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in dims)


def _expand_back(g: Tensor, x: Tensor, dims, keepdim) -> Tensor:
    """Broadcast a reduced gradient back over the reduced dims of x."""
    if not keepdim:
        g = g.reshape(_reduced_shape(x.shape, dims, True))
    return g.expand(x.shape)


class _Reduce(Op):
    kind = REDUCE

    def shape(x, dims, keepdim):
        return _reduced_shape(x.shape, dims, keepdim)


@register("sum", REDUCE)
class Sum(_Reduce):
    shape = _Reduce.shape

    def dtype(x, dims, keepdim):
        return x.dtype if x.dtype.category == 2 else dt.int64

    def forward(xp, x, dims, keepdim):
        # ufunc.reduce skips np.sum's Python-level dispatch (several microseconds per call)
        return xp.add.reduce(x, axis=dims, keepdims=keepdim, dtype=None if x.dtype.kind == "f" else "int64")

    def backward(ctx, g):
        x = ctx.inputs[0]
        return _expand_back(g, x, ctx.dims, ctx.keepdim)


def sum(x: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Sum over `dim` (all dims if None); integers and bools sum to int64."""
    if dtype is not None:
        x = x.to(dtype)
    return apply(Sum, x, dims=norm_dims(dim, x.ndim, "sum"), keepdim=keepdim)


def mean(x: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Arithmetic mean over `dim`; needs a floating dtype, as in PyTorch."""
    if dtype is not None:
        x = x.to(dtype)
    if x.dtype.category < 2:
        raise DTypeError(f"mean: could not infer output dtype from {x.dtype}; expected a floating tensor. "
                         "Hint: call .float() first or pass dtype=")
    dims = norm_dims(dim, x.ndim, "mean")
    n = math.prod(x.shape[d] for d in dims)
    return sum(x, dims, keepdim) * (1.0 / n if n else float("nan"))


@register("amax", REDUCE)
class Amax(_Reduce):
    """Largest value over dims; the gradient is shared evenly between ties (as torch.amax)."""
    shape = _Reduce.shape

    def forward(xp, x, dims, keepdim):
        return xp.maximum.reduce(x, axis=dims, keepdims=keepdim)

    def backward(ctx, g):
        x = ctx.inputs[0]
        m = _expand_back(ctx.out, x, ctx.dims, ctx.keepdim)
        mask = (x == m).to(g.dtype)
        count = mask.sum(ctx.dims, keepdim=True)
        return _expand_back(g, x, ctx.dims, ctx.keepdim) * mask / count


@register("amin", REDUCE)
class Amin(_Reduce):
    shape = _Reduce.shape

    def forward(xp, x, dims, keepdim):
        return xp.minimum.reduce(x, axis=dims, keepdims=keepdim)

    def backward(ctx, g):
        x = ctx.inputs[0]
        m = _expand_back(ctx.out, x, ctx.dims, ctx.keepdim)
        mask = (x == m).to(g.dtype)
        count = mask.sum(ctx.dims, keepdim=True)
        return _expand_back(g, x, ctx.dims, ctx.keepdim) * mask / count


def _check_nonempty(x, dims, name):
    for d in dims:
        if x.shape[d] == 0:
            raise ShapeError(f"{name}: cannot reduce over dimension {d} of size 0 (shape {x.shape}); "
                             "the result has no identity. Hint: check for empty inputs first")


def amax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Largest value over `dim` (all dims if None); ties share the gradient evenly."""
    dims = norm_dims(dim, x.ndim, "amax")
    _check_nonempty(x, dims, "amax")
    return apply(Amax, x, dims=dims, keepdim=keepdim)


def amin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Smallest value over `dim` (all dims if None); ties share the gradient evenly."""
    dims = norm_dims(dim, x.ndim, "amin")
    _check_nonempty(x, dims, "amin")
    return apply(Amin, x, dims=dims, keepdim=keepdim)


@register("argmax", REDUCE)
class Argmax(Op):
    kind = REDUCE
    differentiable = False
    upcast = False

    def shape(x, dim, keepdim):
        if dim is None:
            return (1,) * x.ndim if keepdim else ()
        return _reduced_shape(x.shape, (dim,), keepdim)

    def dtype(x, dim, keepdim):
        return dt.int64

    def forward(xp, x, dim, keepdim):
        if dim is None:
            return xp.asarray(xp.argmax(x)).reshape((1,) * x.ndim if keepdim else ())
        return xp.argmax(x, axis=dim, keepdims=keepdim)


@register("argmin", REDUCE)
class Argmin(Op):
    kind = REDUCE
    differentiable = False
    upcast = False

    def shape(x, dim, keepdim):
        if dim is None:
            return (1,) * x.ndim if keepdim else ()
        return _reduced_shape(x.shape, (dim,), keepdim)

    def dtype(x, dim, keepdim):
        return dt.int64

    def forward(xp, x, dim, keepdim):
        if dim is None:
            return xp.asarray(xp.argmin(x)).reshape((1,) * x.ndim if keepdim else ())
        return xp.argmin(x, axis=dim, keepdims=keepdim)


def argmax(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the largest value (of the flattened tensor if dim is None)."""
    d = None if dim is None or x.ndim == 0 else norm_dim(dim, x.ndim, "argmax")
    _check_nonempty(x, tuple(range(x.ndim)) if d is None else (d,), "argmax")
    return apply(Argmax, x, dim=d, keepdim=keepdim)


def argmin(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the smallest value (of the flattened tensor if dim is None); ties: the first."""
    d = None if dim is None or x.ndim == 0 else norm_dim(dim, x.ndim, "argmin")
    _check_nonempty(x, tuple(range(x.ndim)) if d is None else (d,), "argmin")
    return apply(Argmin, x, dim=d, keepdim=keepdim)


MaxMin = namedtuple("MaxMin", ["values", "indices"])


def max(x: Tensor, dim=None, keepdim: bool = False):
    """max(x) -> the largest value; max(x, dim) -> (values, indices); max(x, other) -> maximum."""
    if isinstance(dim, Tensor):
        from .elementwise import maximum
        return maximum(x, dim)
    if dim is None:
        return amax(x)
    if x.ndim == 0:
        norm_dim(dim, 0, "max")
        return MaxMin(x[...], argmax(x))
    idx = argmax(x, dim, keepdim=True)
    vals = apply(_Gather, x, idx, dim=norm_dim(dim, x.ndim))  # indices valid by construction: no checks
    if not keepdim:
        vals, idx = vals.squeeze(dim), idx.squeeze(dim)
    return MaxMin(vals, idx)


def min(x: Tensor, dim=None, keepdim: bool = False):
    """min(x) -> the smallest value; min(x, dim) -> (values, indices); min(x, other) -> minimum."""
    if isinstance(dim, Tensor):
        from .elementwise import minimum
        return minimum(x, dim)
    if dim is None:
        return amin(x)
    if x.ndim == 0:
        norm_dim(dim, 0, "min")
        return MaxMin(x[...], argmin(x))
    idx = argmin(x, dim, keepdim=True)
    vals = apply(_Gather, x, idx, dim=norm_dim(dim, x.ndim))  # indices valid by construction: no checks
    if not keepdim:
        vals, idx = vals.squeeze(dim), idx.squeeze(dim)
    return MaxMin(vals, idx)


@register("var", REDUCE)
class Var(Op):
    """Variance with Bessel's correction; no degrees of freedom left gives inf (nan for 0/0), as torch."""
    kind = REDUCE

    def shape(x, dims, keepdim, correction):
        return _reduced_shape(x.shape, dims, keepdim)

    def forward(xp, x, dims, keepdim, correction):
        n = math.prod(x.shape[d] for d in dims)
        d = x - xp.mean(x, axis=dims, keepdims=True) if n else x
        return xp.sum(d * d, axis=dims, keepdims=keepdim) / builtins.max(n - correction, 0)

    def backward(ctx, g):
        x, dims = ctx.inputs[0], ctx.dims
        n = math.prod(x.shape[d] for d in dims)
        denom = builtins.max(n - ctx.correction, 0)
        scale = 2.0 / denom if denom else float("inf")
        return _expand_back(g, x, dims, ctx.keepdim) * (x - mean(x, dims, keepdim=True)) * scale


def var(x: Tensor, dim=None, keepdim: bool = False, correction: int = 1,
        unbiased: bool | None = None) -> Tensor:
    """Variance over `dim` with Bessel's `correction` (1 = unbiased, as torch's default)."""
    if unbiased is not None:
        correction = int(unbiased)
    x = float_input(x)
    return apply(Var, x, dims=norm_dims(dim, x.ndim, "var"), keepdim=keepdim, correction=correction)


def std(x: Tensor, dim=None, keepdim: bool = False, correction: int = 1,
        unbiased: bool | None = None) -> Tensor:
    """Standard deviation: sqrt(var); its gradient is zero where std is zero (as torch), not nan."""
    from .elementwise import where
    v = var(x, dim, keepdim, correction, unbiased)
    nonzero = v != 0
    return where(nonzero, where(nonzero, v, 1.0).sqrt(), 0.0)


def logsumexp(x: Tensor, dim, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) over `dim`, computed stably by shifting by the max."""
    x = float_input(x)
    dims = norm_dims(dim, x.ndim, "logsumexp")
    if x.numel() == 0:  # nothing to shift by; an empty sum gives -inf
        return (x.exp().sum(dims, keepdim=True).log()) if keepdim else x.exp().sum(dims).log()
    m = amax(x, dims, keepdim=True).detach()
    m = m.masked_fill(m.isinf(), 0.0)
    out = (x - m).exp().sum(dims, keepdim=True).log() + m
    return out if keepdim else out.squeeze(dims)


@register("cumsum", REDUCE)
class Cumsum(Op):
    kind = REDUCE

    def dtype(x, dim):
        return x.dtype if x.dtype.category == 2 else dt.int64

    def forward(xp, x, dim):
        return xp.cumsum(x, axis=dim)

    def backward(ctx, g):
        d = ctx.dim
        return g.flip(d).cumsum(d).flip(d)


def cumsum(x: Tensor, dim: int, dtype=None) -> Tensor:
    """Running sum along `dim`; integers and bools accumulate in int64."""
    if dtype is not None:
        x = x.to(dtype)
    d = norm_dim(dim, x.ndim, "cumsum")
    if x.ndim == 0:
        return x.to(Cumsum.dtype(x, d)) * 1
    return apply(Cumsum, x, dim=d)


@register("prod", REDUCE)
class Prod(_Reduce):
    shape = _Reduce.shape

    def dtype(x, dims, keepdim):
        return x.dtype if x.dtype.category == 2 else dt.int64

    def forward(xp, x, dims, keepdim):
        dtype = None if x.dtype.kind == "f" else "int64"
        return xp.multiply.reduce(x, axis=dims, keepdims=keepdim, dtype=dtype)

    def backward(ctx, g):
        x = ctx.inputs[0]
        gx = _expand_back(g, x, ctx.dims, ctx.keepdim)
        if not bool((x == 0).any()):
            return gx * _expand_back(ctx.out, x, ctx.dims, ctx.keepdim) / x
        # with zeros, d/dx_i = product of the others: flatten the reduced dims to one axis of
        # length n and, for each i, multiply all entries with entry i replaced by 1
        from .. import creation
        keep = [i for i in range(x.ndim) if i not in ctx.dims]
        xt = x.permute(keep + list(ctx.dims))
        lead = xt.shape[:len(keep)]
        n = math.prod(xt.shape[len(keep):])
        flat = xt.reshape(lead + (1, n)).expand(lead + (n, n))
        eye = creation.eye(n, dtype=dt.bool_)
        others = flat.masked_fill(eye, 1.0).prod(-1)  # (..., n)
        others = others.reshape(xt.shape).permute([p for p, _ in sorted(enumerate(keep + list(ctx.dims)),
                                                                        key=lambda t: t[1])])
        return gx * others


def prod(x: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Product over `dim` (all dims if None); zeros in the input get the exact gradient."""
    if dtype is not None:
        x = x.to(dtype)
    return apply(Prod, x, dims=norm_dims(dim, x.ndim, "prod"), keepdim=keepdim)


@register("all", REDUCE)
class All(_Reduce):
    shape = _Reduce.shape
    differentiable = False
    upcast = False

    def dtype(x, dims, keepdim):
        return dt.bool_

    def forward(xp, x, dims, keepdim):
        return xp.all(x, axis=dims, keepdims=keepdim)


@register("any", REDUCE)
class Any(_Reduce):
    shape = _Reduce.shape
    differentiable = False
    upcast = False

    def dtype(x, dims, keepdim):
        return dt.bool_

    def forward(xp, x, dims, keepdim):
        return xp.any(x, axis=dims, keepdims=keepdim)


def all(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where every element over `dim` is nonzero (a bool tensor)."""
    return apply(All, x, dims=norm_dims(dim, x.ndim, "all"), keepdim=keepdim)


def any(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where some element over `dim` is nonzero (a bool tensor)."""
    return apply(Any, x, dims=norm_dims(dim, x.ndim, "any"), keepdim=keepdim)
