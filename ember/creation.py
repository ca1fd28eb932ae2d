"""Tensor factories: from data, constant fills, ranges, and random draws (through ember.random)."""

from __future__ import annotations

import numpy as np

from . import dtype as dt
from .devices import CPU, backend
from .devices import device as parse_device
from .errors import DTypeError, ShapeError
from .random import _gen
from .tensor import Tensor


def _shape(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (int, np.integer)) or s < 0:
            raise ShapeError(f"invalid size {tuple(size)}: every dimension must be a non-negative int")
    return tuple(int(s) for s in size)


def _finish(arr, dtype: dt.DType, device, requires_grad: bool) -> Tensor:
    dev = parse_device(device)
    be = backend(dev)
    t = Tensor._make(be.asarray(arr, dtype.np), dtype, dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, numbers, NumPy arrays or tensors).

    Python floats give the default dtype (float32), ints int64, bools bool; NumPy arrays keep
    their dtype."""
    if isinstance(data, Tensor):
        arr = data.detach()._data.copy()
        d = data.dtype
    else:
        try:
            arr = np.array(data)
        except ValueError as e:
            raise ShapeError(f"tensor: nested sequences must be rectangular (every row the same length); "
                             f"got a ragged list ({e})") from None
        if isinstance(data, (np.ndarray, np.generic)):
            d = dt.from_numpy_dtype(arr.dtype)
        elif arr.dtype.kind == "f":
            d = dt.get_default_dtype()
        elif arr.dtype.kind in "iu":
            d = dt.int64
        elif arr.dtype.kind == "b":
            d = dt.bool_
        else:
            raise DTypeError(f"tensor: cannot make a tensor from data of NumPy kind {arr.dtype}; expected "
                             "numbers, bools or nested lists of them")
    if dtype is not None:
        d = dt.get_dtype(dtype)
    return _finish(arr.astype(d.np, copy=False), d, device, requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like `tensor`, but shares memory with a tensor or NumPy array when no conversion is needed."""
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or dt.get_dtype(dtype).np == data.dtype):
        return from_numpy(data)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor sharing `arr`'s memory."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy: expected a NumPy array, got {type(arr).__name__}")
    return Tensor._make(arr, dt.from_numpy_dtype(arr.dtype), CPU)


def _fill(size, value, dtype, device, requires_grad, default):
    d = dt.get_dtype(dtype) if dtype is not None else default
    return _finish(np.full(_shape(size), value, dtype=d.np), d, device, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros of shape `size` (ints or one tuple)."""
    return _fill(size, 0, dtype, device, requires_grad, dt.get_default_dtype())


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones of shape `size` (ints or one tuple)."""
    return _fill(size, 1, dtype, device, requires_grad, dt.get_default_dtype())


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uninitialised memory (on cpu, zeros: NumPy's empty would leak old data into tests)."""
    return _fill(size, 0, dtype, device, requires_grad, dt.get_default_dtype())


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of shape `size` filled with `fill_value`; without `dtype`, the value decides it
    (int64 for ints, bool for bools, the default float for floats)."""
    default = dt.scalar_dtype(fill_value) if not isinstance(fill_value, Tensor) else fill_value.dtype
    return _fill((tuple(size) if not isinstance(size, int) else (size,),), fill_value, dtype, device,
                 requires_grad, default)


def _like(fn, x: Tensor, *args, dtype=None, requires_grad=False, **kw):
    return fn(x.shape, *args, dtype=dtype or x.dtype, device=x.device, requires_grad=requires_grad, **kw)


def zeros_like(x: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    """Zeros with x's shape, dtype (unless given) and device."""
    return _like(zeros, x, dtype=dtype, requires_grad=requires_grad)


def ones_like(x: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    """Ones with x's shape, dtype (unless given) and device."""
    return _like(ones, x, dtype=dtype, requires_grad=requires_grad)


def empty_like(x: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor (zeros on cpu) with x's shape, dtype and device."""
    return _like(empty, x, dtype=dtype, requires_grad=requires_grad)


def full_like(x: Tensor, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    """`fill_value` with x's shape, dtype (unless given) and device."""
    return full(x.shape, fill_value, dtype=dtype or x.dtype, device=x.device, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from start (inclusive) to end (exclusive) by step; int64 unless an argument is a float."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    is_float = any(isinstance(v, float) for v in (start, end, step))
    d = dt.get_dtype(dtype) if dtype is not None else (dt.get_default_dtype() if is_float else dt.int64)
    return _finish(np.arange(start, end, step, dtype=np.float64 if is_float else np.int64), d, device,
                   requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from start to end, both included: shape (steps,)."""
    d = dt.get_dtype(dtype) if dtype is not None else dt.get_default_dtype()
    return _finish(np.linspace(start, end, steps), d, device, requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """The (n, m) identity matrix (m defaults to n)."""
    d = dt.get_dtype(dtype) if dtype is not None else dt.get_default_dtype()
    return _finish(np.eye(n, m), d, device, requires_grad)


# --- random ------------------------------------------------------------------------------------


def _float_dtype(dtype) -> dt.DType:
    d = dt.get_dtype(dtype) if dtype is not None else dt.get_default_dtype()
    if not d.is_floating_point:
        raise DTypeError(f"expected a floating dtype for a continuous random draw, got {d}")
    return d


def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1)."""
    return _finish(_gen(generator).uniform(_shape(size)), _float_dtype(dtype), device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal."""
    return _finish(_gen(generator).normal(_shape(size)), _float_dtype(dtype), device, requires_grad)


def randint(low, high=None, size=(), generator=None, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """Integers uniform on [low, high) of shape `size`; `randint(high, size)` starts at 0."""
    if isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if low >= high:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    d = dt.get_dtype(dtype) if dtype is not None else dt.int64
    return _finish(_gen(generator).integers(low, high, _shape((size,))), d, device, requires_grad)


def randint_like(x: Tensor, low, high=None, generator=None, dtype=None) -> Tensor:
    """Integers uniform on [low, high) shaped like `x`, of x's dtype unless given."""
    return randint(low, high, x.shape, generator=generator, dtype=dtype or x.dtype, device=x.device)


def randperm(n: int, generator=None, dtype=None, device=None) -> Tensor:
    """A random permutation of 0..n-1 (int64): shape (n,)."""
    d = dt.get_dtype(dtype) if dtype is not None else dt.int64
    return _finish(_gen(generator).permutation(n), d, device, False)


def normal(mean=0.0, std=1.0, size=None, generator=None, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """Normal draws: numbers `mean`, `std` with shape `size`, or tensors `mean` and/or `std`
    (broadcast together; the result has their shape and dtype)."""
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        ref = mean if isinstance(mean, Tensor) else std
        m = mean.detach().numpy() if isinstance(mean, Tensor) else mean
        s = std.detach().numpy() if isinstance(std, Tensor) else std
        shape = np.broadcast_shapes(np.shape(m), np.shape(s))
        d = _float_dtype(dtype if dtype is not None else ref.dtype)
        draw = _gen(generator).normal(shape) * np.asarray(s, np.float64) + np.asarray(m, np.float64)
        return _finish(draw, d, device if device is not None else ref.device, requires_grad)
    size = () if size is None else size
    return _finish(_gen(generator).normal(_shape((size,)), mean, std), _float_dtype(dtype), device,
                   requires_grad)


def uniform(low=0.0, high=1.0, size=(), generator=None, dtype=None, device=None) -> Tensor:
    """Uniform on [low, high). ember-specific convenience (torch spells it empty(...).uniform_())."""
    return _finish(_gen(generator).uniform(_shape((size,)), low, high), _float_dtype(dtype), device, False)


def rand_like(x: Tensor, generator=None, dtype=None) -> Tensor:
    """Uniform on [0, 1) with x's shape and dtype (unless given)."""
    return rand(x.shape, generator=generator, dtype=dtype or x.dtype)


def randn_like(x: Tensor, generator=None, dtype=None) -> Tensor:
    """Standard normal with x's shape and dtype (unless given)."""
    return randn(x.shape, generator=generator, dtype=dtype or x.dtype)


def bernoulli(p: Tensor, generator=None) -> Tensor:
    """1 with probability p (elementwise), else 0; same dtype as p."""
    u = _gen(generator).uniform(p.shape)
    return Tensor._make((u < p._data).astype(p.dtype.np), p.dtype, p.device)
