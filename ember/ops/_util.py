"""Helpers shared by op declarations: tensor coercion, broadcasting and dim normalisation."""

from __future__ import annotations

from .. import dtype as dt
from ..autograd import apply
from ..devices import CPU, backend
from ..errors import IndexingError, ShapeError, fmt_shape
from ..tensor import Tensor


def as_tensor(x, dtype: dt.DType | None = None, device=CPU) -> Tensor:
    """A Tensor for `x` (a Tensor is returned as is, cast if `dtype` differs; numbers are wrapped)."""
    if isinstance(x, Tensor):
        if dtype is not None and x.dtype is not dtype:
            from .elementwise import cast
            return cast(x, dtype)
        return x
    d = dtype if dtype is not None else dt.scalar_dtype(x) if isinstance(x, (bool, int, float)) else None
    be = backend(device)
    if d is None:
        arr = be.xp.asarray(x)
        if isinstance(x, (be.ndarray, be.xp.generic)) or arr.dtype.kind not in "fiub":
            d = dt.from_numpy_dtype(arr.dtype)
        else:
            d = {"f": dt.get_default_dtype(), "i": dt.int64, "u": dt.int64, "b": dt.bool_}[arr.dtype.kind]
        return Tensor._make(arr.astype(d.np, copy=False), d, device)
    try:
        arr = be.xp.asarray(x, dtype=d.np)
    except OverflowError:  # a Python int beyond the dtype's range wraps around, as in PyTorch
        arr = be.xp.asarray(x).astype(d.np)
    return Tensor._make(arr, d, device)


def promote(op_name: str, *xs):
    """Cast operands (tensors or Python numbers) to their promoted dtype, as PyTorch does."""
    # NumPy scalars count as the Python numbers they hold
    xs = [x.item() if not isinstance(x, Tensor) and hasattr(x, "dtype") and hasattr(x, "item") else x
          for x in xs]
    d = dt.result_type(*xs)
    dev = next((x.device for x in xs if isinstance(x, Tensor)), CPU)
    return d, [as_tensor(x, d, dev) for x in xs]


def broadcast_shapes(op: str, *shapes) -> tuple:
    """The broadcast of `shapes`; raises ShapeError naming `op` and the dimension that clashes."""
    nd = max(len(s) for s in shapes)
    out = []
    for i in range(-nd, 0):
        size = 1
        for s in shapes:
            if -i <= len(s):
                d = s[i]
                if d != 1:
                    if size != 1 and size != d:
                        raise ShapeError(
                            f"{op}: shapes {' and '.join(fmt_shape(s) for s in shapes)} cannot be broadcast: "
                            f"dimension {i} is {size} in one and {d} in another (sizes must match or be 1)")
                    size = d
        out.append(size)
    return tuple(out)


def reduce_to(g: Tensor, shape: tuple) -> Tensor:
    """Sum a broadcast gradient back down to `shape` (the backward of broadcasting)."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape)
                                      if s == 1 and g.shape[i + lead] != 1)
    if dims:
        if len(dims) == lead:  # only leading dims were broadcast: summing them away gives `shape`
            return g.sum(dims)
        g = g.sum(dims, keepdim=True)
    return g.reshape(shape) if g.shape != shape else g


def norm_dim(dim: int, ndim: int, op: str = "") -> int:
    """A dimension index in [0, ndim); raises IndexingError naming `op` when out of range."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexingError(f"{op}: dimension {dim} out of range for a tensor with {ndim} dims "
                            f"(expected -{n} <= dim < {n})")
    return dim % n


def norm_dims(dim, ndim: int, op: str = "") -> tuple:
    """`dim` (None, int or sequence) as a sorted tuple of non-negative dims; None and () mean all.

    A 0-dim tensor accepts dim 0 or -1 (as torch does) and has no dims to reduce: the result is ().
    """
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        d = norm_dim(dim, ndim, op)
        return (d,) if ndim else ()
    if len(dim) == 0:
        return tuple(range(ndim))
    dims = tuple(sorted({norm_dim(d, ndim, op) for d in dim}))
    return dims if ndim else ()


def float_input(x: Tensor) -> Tensor:
    """Integer and bool inputs of float-valued functions (exp, sqrt, ...) become the default float."""
    return x if x.dtype.category == 2 else as_tensor(x, dt.get_default_dtype())


def const(like: Tensor, value) -> Tensor:
    """A tensor of `value` on `like`'s device, without history."""
    return Tensor._make(backend(like.device).xp.asarray(value, dtype=like.dtype.np), like.dtype, like.device)


__all__ = ["as_tensor", "promote", "broadcast_shapes", "reduce_to", "norm_dim", "norm_dims", "float_input",
           "const", "apply", "Tensor", "dt"]
