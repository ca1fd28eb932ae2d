"""Normalisation: layer_norm, rms_norm, group_norm, batch_norm, instance_norm and normalize.

layer_norm / rms_norm / group_norm use the fused registry ops in ember.ops.nn for the
normalisation and apply the affine weight and bias with ember ops.
"""

from __future__ import annotations

import math

from ... import amp as _amp
from ...autograd import no_grad
from ...errors import ShapeError, fmt_shape
from ...ops import nn as _nnops
from ...tensor import Tensor


def _normalized_shape(op: str, input: Tensor, normalized_shape) -> tuple:
    ns = normalized_shape
    shape = (ns,) if isinstance(ns, int) else tuple(int(s) for s in ns)
    if len(shape) == 0 or input.ndim < len(shape) or tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ShapeError(f"{op}: normalized_shape {shape} does not match the last dims of the input "
                         f"{fmt_shape(input.shape)}. Hint: pass input.shape[-k:] for the k dims to normalise")
    return shape


def _affine(op: str, y: Tensor, weight, bias, shape) -> Tensor:
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != tuple(shape):
            raise ShapeError(f"{op}: {name} {fmt_shape(t.shape)} must have shape {fmt_shape(shape)}")
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


@_amp.float32_inputs
def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing `normalized_shape` dims (biased variance), then scale and shift.
    input (*, *normalized_shape) -> same shape; weight and bias have shape normalized_shape."""
    shape = _normalized_shape("layer_norm", input, normalized_shape)
    return _affine("layer_norm", _nnops.layer_norm(input, len(shape), eps), weight, bias, shape)


@_amp.float32_inputs
def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """x / sqrt(mean(x^2) + eps) over the trailing dims, times weight.  eps=None: the compute dtype's eps."""
    shape = _normalized_shape("rms_norm", input, normalized_shape)
    return _affine("rms_norm", _nnops.rms_norm(input, len(shape), eps), weight, None, shape)


@_amp.float32_inputs
def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise each group of C/num_groups channels over (channels, *spatial).  (N, C, *) -> same."""
    if input.ndim < 2:
        raise ShapeError(f"group_norm: input {fmt_shape(input.shape)} needs at least 2 dims (N, C, *)")
    N, C = input.shape[:2]
    if num_groups <= 0 or C % num_groups:
        raise ShapeError(f"group_norm: {C} channels are not divisible into num_groups={num_groups}")
    y = _nnops.layer_norm(input.reshape(N, num_groups, -1), 1, eps).reshape(input.shape)
    bshape = (1, C) + (1,) * (input.ndim - 2)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ShapeError(f"group_norm: {name} {fmt_shape(t.shape)} must have shape ({C},)")
    if weight is not None:
        y = y * weight.reshape(bshape)
    if bias is not None:
        y = y + bias.reshape(bshape)
    return y


@_amp.float32_inputs
def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel over (N, *spatial).  input (N, C, *) -> same shape.

    training=True uses the batch statistics and updates running_mean / running_var in place
    (running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance);
    training=False uses the running statistics.
    """
    if input.ndim < 2:
        raise ShapeError(f"batch_norm: input {fmt_shape(input.shape)} needs at least 2 dims (N, C, *)")
    C = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ShapeError(f"batch_norm: {name} {fmt_shape(t.shape)} must have shape ({C},) for an input "
                             f"with {C} channels {fmt_shape(input.shape)}")
    dims = (0,) + tuple(range(2, input.ndim))
    bshape = (1, C) + (1,) * (input.ndim - 2)
    if training:
        n = math.prod(input.shape[d] for d in dims)
        if n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input "
                             f"size {fmt_shape(input.shape)}")
        mean = input.mean(dims, keepdim=True)
        xc = input - mean
        var = (xc * xc).mean(dims, keepdim=True)
        y = xc * (var + eps).rsqrt()
        if momentum is None:
            raise ValueError("batch_norm: momentum must be a float; for a cumulative average pass "
                             "1 / num_batches_tracked (as nn.BatchNorm does)")
        with no_grad():
            m = float(momentum)
            if running_mean is not None:
                running_mean.mul_(1 - m).add_((mean.detach().reshape(C) * m).to(running_mean.dtype))
            if running_var is not None:
                unbiased = var.detach().reshape(C) * (n / (n - 1))
                running_var.mul_(1 - m).add_((unbiased * m).to(running_var.dtype))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False")
        y = (input - running_mean.reshape(bshape)) * (running_var.reshape(bshape) + eps).rsqrt()
    if weight is not None:
        y = y * weight.reshape(bshape)
    if bias is not None:
        y = y + bias.reshape(bshape)
    return y


def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each (sample, channel) over its spatial dims.  (N, C, *) -> same (running stats unused
    unless use_input_stats=False)."""
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    N, C = input.shape[:2]
    return group_norm(input, C, weight, bias, eps) if N else input


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """input / max(||input||_p along dim, eps); shape unchanged."""
    if p == 2:
        norm = (input * input).sum(dim, keepdim=True).sqrt()
    elif p == 1:
        norm = input.abs().sum(dim, keepdim=True)
    elif p == float("inf"):
        norm = input.abs().amax(dim, keepdim=True)
    else:
        norm = (input.abs() ** p).sum(dim, keepdim=True) ** (1.0 / p)
    return input / norm.clamp(min=eps)
