"""default_collate: turn a list of samples into one batch of ember tensors.

Tensors, NumPy arrays and numbers are stacked with a single NumPy call per field; dicts, tuples and
lists are collated field by field (the structure of torch.utils.data.default_collate).
"""

from __future__ import annotations

import collections.abc
import numbers

import numpy as np

from .. import dtype as dt
from ..tensor import Tensor


def _wrap(arr: np.ndarray, where: str) -> Tensor:
    try:
        d = dt.from_numpy_dtype(arr.dtype)
    except Exception:
        raise TypeError(f"default_collate: {where} have NumPy dtype {arr.dtype}, which ember tensors cannot "
                        "hold; expected numbers, bools, tensors or NumPy arrays of numbers") from None
    return Tensor._make(arr, d, _cpu())


def _cpu():
    from ..devices import CPU
    return CPU


def _check_tensors(batch) -> None:
    first = batch[0]
    for i, t in enumerate(batch):
        if not isinstance(t, Tensor):
            raise TypeError(f"default_collate: sample 0 is a Tensor but sample {i} is a {type(t).__name__}")
        if t.shape != first.shape:
            raise ValueError(f"default_collate: tensors must have equal shapes to be stacked; sample 0 has "
                             f"shape {tuple(first.shape)}, sample {i} has {tuple(t.shape)}. Hint: pad them, "
                             "or pass a collate_fn")
        if t.dtype is not first.dtype:
            raise TypeError(f"default_collate: sample 0 is {first.dtype} but sample {i} is {t.dtype}")


def _stack_tensors(batch) -> Tensor:
    first = batch[0]
    d = first.dtype
    try:
        if any(t.dtype is not d for t in batch):
            raise TypeError
        arr = np.stack([t.detach().numpy() if t.requires_grad else t.numpy() for t in batch])
    except (TypeError, ValueError, AttributeError):
        _check_tensors(batch)  # raises the message that says which sample differs
        raise
    return Tensor._make(arr, d, first.device)


def _stack_arrays(batch) -> Tensor:
    try:
        arr = np.stack(batch)
    except (TypeError, ValueError):
        first = batch[0]
        for i, a in enumerate(batch):
            if not isinstance(a, np.ndarray) or a.shape != first.shape:
                got = tuple(a.shape) if isinstance(a, np.ndarray) else type(a).__name__
                raise ValueError(f"default_collate: arrays must have equal shapes to be stacked; sample 0 "
                                 f"has shape {first.shape}, sample {i} has {got}") from None
        raise
    return _wrap(arr, "arrays")


def default_collate(batch: list):
    """Collate a list of B samples into a batch.

    Tensors / arrays of shape S -> a tensor (B, *S); Python floats -> float64 (B,), ints -> int64 (B,),
    bools -> bool (B,), NumPy scalars keep their dtype; dicts -> dicts of batches; namedtuples keep their
    type; tuples and lists -> a list with one batch per position; strings stay a list."""
    if not isinstance(batch, (list, tuple)) or len(batch) == 0:
        raise ValueError(f"default_collate: expected a non-empty list of samples, got {batch!r:.80}")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "USO":
            return list(batch)
        return _stack_arrays(batch)
    if isinstance(elem, np.generic):
        return _wrap(np.asarray(batch, dtype=elem.dtype), "NumPy scalars")
    if isinstance(elem, bool):
        return _wrap(np.asarray(batch, dtype=np.bool_), "bools")
    if isinstance(elem, numbers.Integral):
        return _wrap(np.asarray(batch, dtype=np.int64), "ints")
    if isinstance(elem, numbers.Real):
        return _wrap(np.asarray(batch, dtype=np.float64), "floats")
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        try:
            return type(elem)({k: default_collate([d[k] for d in batch]) for k in elem})
        except TypeError:
            return {k: default_collate([d[k] for d in batch]) for k in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        n = len(elem)
        for i, s in enumerate(batch):
            if len(s) != n:
                raise ValueError(f"default_collate: each sample must have the same number of fields; "
                                 f"sample 0 has {n}, sample {i} has {len(s)}")
        return [default_collate(list(s)) for s in zip(*batch)]
    raise TypeError(f"default_collate: cannot collate samples of type {type(elem).__name__}; expected "
                    "tensors, NumPy arrays, numbers, strings, dicts, tuples or lists. "
                    "Hint: pass a collate_fn")


def default_convert(data):
    """The conversion for `batch_size=None`: NumPy arrays become tensors (no batch dimension is added),
    containers are converted field by field, everything else is returned unchanged."""
    if isinstance(data, np.ndarray) and data.dtype.kind not in "USO":
        return _wrap(data, "arrays")
    if isinstance(data, collections.abc.Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(v) for v in data))
    if isinstance(data, tuple):
        return [default_convert(v) for v in data]
    if isinstance(data, list):
        return [default_convert(v) for v in data]
    return data
