"""Activations, softmax, dropout, embedding and one_hot for ember.nn.functional."""

from __future__ import annotations

import warnings

from ... import amp as _amp
from ... import creation
from ... import dtype as dt
from ...autograd import no_grad
from ...errors import DTypeError, IndexingError, ShapeError, fmt_shape
from ...ops import elementwise as _E
from ...ops import nn as _nnops
from ...tensor import Tensor

# --- activations (torch signatures, `inplace` honoured) --------------------------------------------


def _maybe_inplace(input: Tensor, out: Tensor, inplace: bool) -> Tensor:
    return input.copy_(out) if inplace else out


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0)."""
    return input.relu_() if inplace else _E.relu(input)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6)."""
    return _maybe_inplace(input, _E.clamp(input, 0.0, 6.0), inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """x clamped to [min_val, max_val]."""
    return _maybe_inplace(input, _E.clamp(input, min_val, max_val), inplace)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) (approximate='tanh' for the tanh form)."""
    return _E.gelu(input, approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x)."""
    return _maybe_inplace(input, _E.silu(input), inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    return _maybe_inplace(input, input * _E.tanh(_E.softplus(input)), inplace)


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-x))."""
    return _E.sigmoid(input)


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return _E.tanh(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x if x > 0 else negative_slope * x."""
    return _maybe_inplace(input, _E.leaky_relu(input, negative_slope), inplace)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return _maybe_inplace(input, _E.elu(input, alpha), inplace)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold."""
    return _E.softplus(input, beta, threshold)


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), computed stably."""
    return -_E.softplus(-input, threshold=float("inf"))


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b) where a, b are the two halves of input along dim."""
    if input.shape[dim] % 2:
        raise ShapeError(f"glu: dim {dim} of input {fmt_shape(input.shape)} must have even size")
    a, b = input.chunk(2, dim)
    return a * _E.sigmoid(b)


# --- softmax family ----------------------------------------------------------------------------


def _legacy_dim(op: str, ndim: int) -> int:
    warnings.warn(f"{op}: implicit dimension choice is deprecated; pass dim=", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


@_amp.float32_inputs
def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along dim (input cast to dtype first if given); shape unchanged."""
    return _nnops.softmax(input, _legacy_dim("softmax", input.ndim) if dim is None else dim, dtype)


@_amp.float32_inputs
def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """log(softmax(x)) along dim, computed stably; shape unchanged."""
    return _nnops.log_softmax(input, _legacy_dim("log_softmax", input.ndim) if dim is None else dim, dtype)


@_amp.float32_inputs
def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """softmax(-x) along dim."""
    return _nnops.softmax(-input, _legacy_dim("softmin", input.ndim) if dim is None else dim, dtype)


# --- dropout -----------------------------------------------------------------------------------


def _check_p(op: str, p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")
    return float(p)


def _keep_mask(shape, p: float, like: Tensor) -> Tensor:
    """Bernoulli(1 - p) mask scaled by 1 / (1 - p), drawn from ember.random's default generator."""
    with no_grad():
        keep = creation.bernoulli(creation.full(shape, 1.0 - p, dtype=like.dtype))
        return keep * (1.0 / (1.0 - p))


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (identity when not training)."""
    p = _check_p("dropout", p)
    if not training or p == 0.0:
        return input
    out = input * 0.0 if p == 1.0 else input * _keep_mask(input.shape, p, input)
    return _maybe_inplace(input, out, inplace)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels: input (N, C, H, W) (or (C, H, W)); each (n, c) plane dropped with prob p."""
    p = _check_p("dropout2d", p)
    if input.ndim not in (3, 4):
        raise ShapeError(f"dropout2d: input {fmt_shape(input.shape)} must have 3 or 4 dims (N, C, H, W)")
    if not training or p == 0.0:
        return input
    shape = input.shape[:-2] + (1, 1)
    out = input * 0.0 if p == 1.0 else input * _keep_mask(shape, p, input)
    return _maybe_inplace(input, out, inplace)


# --- embedding and one_hot ----------------------------------------------------------------------


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of weight (num_embeddings, dim) picked by integer input (*) -> (*, dim).

    padding_idx: that row gets no gradient.  max_norm: looked-up rows with a larger norm are
    renormalised in place first (as torch).  sparse is accepted but gradients are always dense.
    """
    if input.dtype.category != 1:
        raise DTypeError(f"embedding: input must hold integer indices, got {input.dtype}. Hint: use .long()")
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight {fmt_shape(weight.shape)} must be 2-D (num_embeddings, dim)")
    n = weight.shape[0]
    if input.numel() and bool(((input < 0) | (input >= n)).any()):
        raise IndexingError(f"embedding: index out of range for a table of {n} rows (input holds values "
                            f"{int(input.amin())}..{int(input.amax())})")
    if scale_grad_by_freq:
        raise NotImplementedError("embedding: scale_grad_by_freq=True is not supported by ember")
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise IndexingError(f"embedding: padding_idx {padding_idx} must be within the {n} rows")
        padding_idx %= n
    if max_norm is not None:
        with no_grad():
            flat = input.reshape(-1)
            rows = weight[flat]
            norms = (rows.abs() ** norm_type).sum(1, keepdim=True) ** (1.0 / norm_type)
            scale = _E.where(norms > max_norm, max_norm / (norms + 1e-7), creation.ones_like(norms))
            weight[flat] = rows * scale
    out = weight[input]
    if padding_idx is not None:
        pad = (input == padding_idx).unsqueeze(-1)
        out = _E.where(pad, out.detach(), out)
    return out


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 (*, num_classes) with a 1 at each index of tensor (*); num_classes=-1: max + 1."""
    if tensor.dtype.category != 1:
        raise DTypeError(f"one_hot: expected an integer tensor of class indices, got {tensor.dtype}")
    if num_classes == -1:
        num_classes = int(tensor.amax()) + 1 if tensor.numel() else 0
    if tensor.numel() and bool(((tensor < 0) | (tensor >= num_classes)).any()):
        raise IndexingError(f"one_hot: class values must be in [0, {num_classes}), got values "
                            f"{int(tensor.amin())}..{int(tensor.amax())}")
    return (tensor.unsqueeze(-1) == creation.arange(num_classes)).to(dt.int64)
