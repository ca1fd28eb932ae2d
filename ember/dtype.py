"""dtypes: the ten element types ember tensors hold, and PyTorch's type-promotion rules.

A `DType` wraps the NumPy dtype a cpu buffer uses (bfloat16 comes from ml_dtypes).
Arithmetic on float16/bfloat16 is computed in float32 and rounded, as PyTorch does on cpu.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from .errors import DTypeError


class DType:
    """An element type: `ember.float32`, `ember.int64`, ... Compare with `==` or `is`."""

    __slots__ = ("name", "np", "itemsize", "is_floating_point", "is_signed", "category", "is_low_precision")

    def __init__(self, name: str, np_dtype, category: int):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize
        self.category = category  # 0 bool, 1 integer, 2 floating
        self.is_floating_point = category == 2
        self.is_signed = category == 2 or (category == 1 and self.np.kind == "i")
        self.is_low_precision = category == 2 and self.itemsize == 2  # float16, bfloat16: compute in float32

    def __repr__(self) -> str:
        return f"ember.{self.name}"

    def __reduce__(self):
        return (get_dtype, (self.name,))


float32 = DType("float32", np.float32, 2)
float64 = DType("float64", np.float64, 2)
float16 = DType("float16", np.float16, 2)
bfloat16 = DType("bfloat16", ml_dtypes.bfloat16, 2)
int8 = DType("int8", np.int8, 1)
uint8 = DType("uint8", np.uint8, 1)
int16 = DType("int16", np.int16, 1)
int32 = DType("int32", np.int32, 1)
int64 = DType("int64", np.int64, 1)
bool_ = DType("bool", np.bool_, 0)

ALL = (float32, float64, float16, bfloat16, int8, uint8, int16, int32, int64, bool_)
LOW_PRECISION = (float16, bfloat16)
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update(float=float32, double=float64, half=float16, long=int64, int=int32, short=int16)
_BY_NP = {d.np: d for d in ALL}

_default_float = float32


def get_default_dtype() -> DType:
    """The dtype of float tensors made without an explicit dtype (float32 unless changed)."""
    return _default_float


def set_default_dtype(d: DType) -> None:
    """Set the dtype new float tensors get; must be a floating dtype."""
    global _default_float
    d = get_dtype(d)
    if not d.is_floating_point:
        raise DTypeError(f"set_default_dtype: got {d}, expected a floating dtype (float32 or float64)")
    _default_float = d


def get_dtype(d) -> DType:
    """Normalise a DType, a name ('float32'), a NumPy dtype or a Python type to a DType."""
    if isinstance(d, DType):
        return d
    if isinstance(d, str):
        if d in _BY_NAME:
            return _BY_NAME[d]
        raise DTypeError(f"unknown dtype name {d!r}; expected one of {sorted(_BY_NAME)}")
    if d is float:
        return _default_float
    if d is int:
        return int64
    if d is bool:
        return bool_
    try:
        return _BY_NP[np.dtype(d)]
    except (TypeError, KeyError):
        raise DTypeError(f"unsupported dtype {d!r}; expected one of {[x.name for x in ALL]}") from None


def from_numpy_dtype(npd) -> DType:
    """The DType for a NumPy dtype; raises DTypeError for ones ember does not hold (complex, str...)."""
    try:
        return _BY_NP[npd]
    except KeyError:
        raise DTypeError(f"NumPy dtype {npd} has no ember equivalent; expected one of "
                         f"{[x.name for x in ALL]}") from None


def _promote_pair(a: DType, b: DType) -> DType:
    if a.category != b.category:
        return a if a.category > b.category else b
    if a.category == 2 and bfloat16 in (a, b):
        other = b if a is bfloat16 else a
        return float32 if other is float16 else other
    # NumPy's table agrees with PyTorch's within a category (uint8 + int8 -> int16, ...)
    return _BY_NP[np.promote_types(a.np, b.np)]


_PROMOTE = {(a, b): _promote_pair(a, b) for a in ALL for b in ALL}


def promote_types(a: DType, b: DType) -> DType:
    """The dtype two tensor dtypes promote to (PyTorch's table: float beats int beats bool;
    within floats float16 with bfloat16 gives float32; uint8 with int8 gives int16)."""
    try:
        return _PROMOTE[a, b]
    except KeyError:
        return _PROMOTE[get_dtype(a), get_dtype(b)]


def scalar_dtype(x) -> DType:
    """The dtype a Python number stands for when it meets a tensor."""
    if isinstance(x, bool):
        return bool_
    if isinstance(x, int):
        return int64
    if isinstance(x, float):
        return _default_float
    raise DTypeError(f"expected a tensor or a Python number (bool, int, float), got {type(x).__name__}")


_SCALAR_CATEGORY = {bool: 0, int: 1, float: 2}


def result_type(*operands) -> DType:
    """PyTorch's promotion across tensors and Python scalars.

    Dimensioned tensors decide the dtype unless a zero-dim tensor, or failing that a
    Python scalar, belongs to a higher category (bool < integer < floating). A Python
    float meeting integer tensors gives the default float dtype; a Python int meeting bool
    tensors gives int64.
    """
    dims = zeros = None
    scalar_cat = -1
    for x in operands:
        cat = _SCALAR_CATEGORY.get(x.__class__)
        if cat is not None:
            if cat > scalar_cat:
                scalar_cat = cat
            continue
        d = getattr(x, "dtype", None)
        if d is None or not isinstance(d, DType):
            if isinstance(x, (bool, int, float, np.bool_, np.integer, np.floating)):
                # subclasses of the numbers (IntEnum, ...) and NumPy scalars count as Python numbers
                cat = 0 if isinstance(x, (bool, np.bool_)) else 1 if isinstance(x, (int, np.integer)) else 2
                scalar_cat = max(scalar_cat, cat)
                continue
            raise DTypeError(f"result_type: expected tensors or Python numbers, got {type(x).__name__}")
        if x.ndim == 0:
            zeros = d if zeros is None else _PROMOTE[zeros, d]
        else:
            dims = d if dims is None else _PROMOTE[dims, d]
    out = dims
    if zeros is not None:
        if out is None:
            out = zeros
        elif zeros.category > out.category:
            out = zeros
    if scalar_cat >= 0:
        if out is None:
            out = (bool_, int64, _default_float)[scalar_cat]
        elif scalar_cat > out.category:
            # the scalar's kind wins, at the default width: a float scalar gives the default float
            out = int64 if scalar_cat == 1 else _default_float
    return out
