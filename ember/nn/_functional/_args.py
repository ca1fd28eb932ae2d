"""Argument normalisation shared by the functional ops (int-or-pair arguments, reductions)."""

from __future__ import annotations

from ...errors import ShapeError


def ntuple(value, n: int, op: str, name: str) -> tuple:
    """`value` (an int or a sequence of n ints) as an n-tuple of ints."""
    if isinstance(value, int):
        return (value,) * n
    t = tuple(int(v) for v in value)
    if len(t) == 1:
        return t * n
    if len(t) != n:
        raise ShapeError(f"{op}: {name} must be an int or {n} ints, got {value!r}")
    return t


def positive(values: tuple, op: str, name: str, minimum: int = 1) -> tuple:
    if any(v < minimum for v in values):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {values}")
    return values


def check_reduction(reduction: str, op: str) -> str:
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{op}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return reduction


def legacy_reduction(size_average, reduce, reduction: str) -> str:
    """torch's deprecated size_average/reduce flags mapped onto `reduction`."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else "mean" if size_average else "sum"


def reduce_loss(loss, reduction: str):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
