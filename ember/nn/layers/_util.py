"""Helpers shared by layer constructors: tuple arguments and factory keyword arguments."""

from __future__ import annotations

from ...creation import empty
from ...tensor import Tensor
from ..parameter import Parameter


def ntuple(x, n: int, name: str = "argument") -> tuple:
    """`x` repeated n times if it is a number, else `x` as a tuple of length n."""
    if isinstance(x, (tuple, list)):
        if len(x) != n:
            raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {x}")
        return tuple(x)
    return (x,) * n


def new_param(*shape: int, dtype=None, device=None) -> Parameter:
    """An uninitialised (zero-filled) Parameter; the layer's reset_parameters fills it."""
    return Parameter(empty(*shape, dtype=dtype, device=device))


def new_buffer(*shape: int, dtype=None, device=None) -> Tensor:
    return empty(*shape, dtype=dtype, device=device)
