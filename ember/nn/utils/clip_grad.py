"""Gradient clipping: rescale all gradients by their total norm, or clamp each value.

Norms are reduced per gradient tensor, then across tensors, with ember ops and no host sync
(except when `error_if_nonfinite` asks for a check), so clipping also runs under the compiler.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ... import dtype as dt
from ...autograd import no_grad
from ...creation import tensor
from ...ops import amax, amin, clamp, stack
from ...tensor import Tensor

_EPS = 1e-6  # PyTorch's: keeps the coefficient finite when the norm is 0


def _grads(parameters) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _partial(g: Tensor, norm_type: float) -> Tensor:
    """The per-tensor piece that combines across tensors: max |g|, min |g|, count, or sum |g|**p."""
    if g.dtype in dt.LOW_PRECISION:
        g = g.float()  # sums of squares overflow float16
    if norm_type == math.inf:
        return amax(g.abs())
    if norm_type == -math.inf:
        return amin(g.abs())
    if norm_type == 0:
        return (g != 0).sum().to(g.dtype)
    if norm_type == 1:
        return g.abs().sum()
    if norm_type == 2:
        return (g * g).sum()
    return (g.abs() ** norm_type).sum()


def get_total_norm(tensors: Iterable[Tensor], norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> Tensor:
    """The `norm_type`-norm of all `tensors` together, as if concatenated into one vector: a 0-d tensor.

    norm_type: a positive float, 0 (count of nonzeros), inf (max |x|) or -inf (min |x|).
    """
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return tensor(0.0)
    with no_grad():
        parts = stack([_partial(g, norm_type) for g in tensors])
        if norm_type == math.inf:
            total = amax(parts)
        elif norm_type == -math.inf:
            total = amin(parts)
        elif norm_type in (0.0, 1.0):
            total = parts.sum()
        elif norm_type == 2.0:
            total = parts.sum().sqrt()
        else:
            total = parts.sum() ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                           f"non-finite ({total.item()}), so it cannot be clipped. Hint: find the inf/NaN "
                           "gradient, or pass error_if_nonfinite=False to scale by the non-finite norm")
    return total


def clip_grads_with_norm_(parameters, max_norm: float, total_norm: Tensor) -> None:
    """Scale every gradient by min(1, max_norm / (total_norm + 1e-6)), in place."""
    _scale(_grads(parameters), max_norm, total_norm)


def _scale(grads: list[Tensor], max_norm: float, total_norm: Tensor) -> None:
    if not grads:
        return
    with no_grad():
        coef = clamp(float(max_norm) / (total_norm + _EPS), max=1.0)
        for g in grads:
            g.mul_(coef if coef.dtype is g.dtype else coef.to(g.dtype))


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Rescale the gradients of `parameters` in place so that their total norm is at most `max_norm`.

    Returns the total norm before clipping (a 0-d tensor, float32 for low-precision gradients).
    With error_if_nonfinite=True an inf/NaN total norm raises RuntimeError instead.
    """
    grads = _grads(parameters)
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    _scale(grads, max_norm, total)
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient value of `parameters` into [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    with no_grad():
        for g in _grads(parameters):
            g.clamp_(-clip_value, clip_value)


__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]
