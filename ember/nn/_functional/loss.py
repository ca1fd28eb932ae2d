"""Losses: cross_entropy, nll_loss, mse_loss, l1_loss, binary_cross_entropy(_with_logits).

Reductions follow torch: 'mean' of a class-weighted loss divides by the summed weights of the
targets that are not ignored.
"""

from __future__ import annotations

from ... import amp as _amp
from ... import dtype as dt
from ...errors import DTypeError, IndexingError, ShapeError, fmt_shape
from ...ops import elementwise as _E
from ...ops import nn as _nnops
from ...tensor import Tensor
from ._args import check_reduction, legacy_reduction, reduce_loss


def _class_input(op: str, input: Tensor, target: Tensor):
    """(input, target, unbatched) with input (N, C, *) and target (N, *) or (N, C, *) probabilities."""
    if input.ndim == 0:
        raise ShapeError(f"{op}: input must have a class dimension, got a scalar")
    unbatched = input.ndim == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    if target.dtype.is_floating_point:
        if target.shape != input.shape:
            raise ShapeError(f"{op}: class-probability target {fmt_shape(target.shape)} must have the "
                             f"input's shape {fmt_shape(input.shape)}")
    elif target.shape != input.shape[:1] + input.shape[2:]:
        raise ShapeError(f"{op}: target {fmt_shape(target.shape)} does not match input "
                         f"{fmt_shape(input.shape)}: expected class indices of shape "
                         f"{fmt_shape(input.shape[:1] + input.shape[2:])} (input (N, C, *) -> target "
                         "(N, *)). Hint: targets are class indices, not one-hot vectors")
    return input, target, unbatched


def _check_target(op: str, target: Tensor, C: int, ignore_index: int) -> tuple[Tensor, Tensor]:
    """(target with ignored entries set to class 0, the ignored mask); raises on an index outside
    0..C-1 that is not ignore_index."""
    if target.dtype.category != 1:
        raise DTypeError(f"{op}: class-index target must be an integer tensor, got {target.dtype}")
    ignored = target == ignore_index
    safe = target.masked_fill(ignored, 0)
    if safe.numel() and bool(((safe < 0) | (safe >= C)).any()):
        bad = int(safe.masked_fill((safe >= 0) & (safe < C), 0).abs().amax())
        raise IndexingError(f"{op}: target contains class index {bad} (or -{bad}), out of range for {C} "
                            f"classes (valid: 0..{C - 1}, or ignore_index={ignore_index})")
    return safe, ignored


def _pick(op: str, logp: Tensor, safe: Tensor, ignored: Tensor, weight) -> tuple[Tensor, Tensor]:
    """(-logp[target], per-element weight with ignored targets 0); logp (N, C, *), safe and ignored
    (N, *) from _check_target."""
    C = logp.shape[1]
    picked = logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    w = (~ignored).to(logp.dtype)
    if weight is not None:
        if weight.shape != (C,):
            raise ShapeError(f"{op}: weight {fmt_shape(weight.shape)} must have shape ({C},), one per class")
        w = w * weight[safe]
    return -picked, w


def _weighted_reduce(loss: Tensor, w: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w.sum()


@_amp.float32_inputs
def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices.  input (N, C, *) log-probabilities, target (N, *)
    (or unbatched (C,) and ()); reduction 'none' gives (N, *)."""
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "nll_loss")
    x, t, unbatched = _class_input("nll_loss", input, target)
    safe, ignored = _check_target("nll_loss", t, x.shape[1], ignore_index)
    nll, w = _pick("nll_loss", x, safe, ignored, weight)
    out = _weighted_reduce(nll * w, w, reduction)
    return out.squeeze(0) if unbatched and reduction == "none" else out


@_amp.float32_inputs
def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy of logits.  input (N, C, *) (or (C,)); target class indices (N, *) or class
    probabilities (N, C, *).  label_smoothing mixes the target with the uniform distribution."""
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    x, t, unbatched = _class_input("cross_entropy", input, target)
    C = x.shape[1]
    if not t.dtype.is_floating_point:  # checked first: the pick then fuses into log-softmax's kernel
        safe, ignored = _check_target("cross_entropy", t, C, ignore_index)
    logp = _nnops.log_softmax(x, 1)
    wshape = (1, C) + (1,) * (x.ndim - 2)
    if t.dtype.is_floating_point:
        if label_smoothing > 0:
            t = t * (1 - label_smoothing) + label_smoothing / C
        prod = logp * t if weight is None else logp * t * weight.reshape(wshape)
        if reduction == "mean":
            out = -prod.sum() / (x.numel() // C if x.numel() else float("nan"))
        else:
            out = -prod.sum() if reduction == "sum" else -prod.sum(1)
        return out.squeeze(0) if unbatched and reduction == "none" else out
    nll, w = _pick("cross_entropy", logp, safe, ignored, weight)
    out = _weighted_reduce(nll * w, w, reduction)
    if label_smoothing > 0:
        # torch: the smoothing term is -sum_c weight_c logp_c, zero at ignored targets, with the
        # same normaliser as the nll term under 'mean'
        ls = logp if weight is None else logp * weight.reshape(wshape)
        smooth = -ls.sum(1) * (t != ignore_index).to(logp.dtype)
        out = out * (1 - label_smoothing) + _weighted_reduce(smooth, w, reduction) * (label_smoothing / C)
    return out.squeeze(0) if unbatched and reduction == "none" else out


def _pointwise(op: str, input: Tensor, target: Tensor):
    if input.shape != target.shape:
        from ...ops._util import broadcast_shapes
        broadcast_shapes(op, input.shape, target.shape)  # raises ShapeError when they do not broadcast
    return input, target


@_amp.float32_inputs
def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
             weight: Tensor | None = None) -> Tensor:
    """(input - target)^2, reduced; shapes broadcast.  `weight` (broadcastable) scales each element."""
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "mse_loss")
    input, target = _pointwise("mse_loss", input, target)
    d = input - target
    loss = d * d
    return reduce_loss(loss if weight is None else loss * weight, reduction)


@_amp.float32_inputs
def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
            weight: Tensor | None = None) -> Tensor:
    """|input - target|, reduced; shapes broadcast."""
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "l1_loss")
    input, target = _pointwise("l1_loss", input, target)
    loss = (input - target).abs()
    return reduce_loss(loss if weight is None else loss * weight, reduction)


@_amp.float32_inputs
def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target)."""
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "smooth_l1_loss")
    d = (input - target).abs()
    if beta == 0:
        return reduce_loss(d, reduction)
    return reduce_loss(_E.where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta), reduction)


@_amp.float32_inputs
def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                         reduce=None, reduction: str = "mean") -> Tensor:
    """-(t log(p) + (1 - t) log(1 - p)) for probabilities p = input (logs clamped at -100, as torch)."""
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "binary_cross_entropy")
    if input.shape != target.shape:
        raise ShapeError(f"binary_cross_entropy: target {fmt_shape(target.shape)} must have the input's "
                         f"shape {fmt_shape(input.shape)}")
    if input.numel() and bool(((input < 0) | (input > 1)).any()):
        raise ValueError("binary_cross_entropy: input values must be probabilities in [0, 1]. Hint: for "
                         "logits use binary_cross_entropy_with_logits")
    target = target.to(input.dtype)
    loss = -(target * input.log().clamp(min=-100) + (1 - target) * (1 - input).log().clamp(min=-100))
    return reduce_loss(loss if weight is None else loss * weight, reduction)


@_amp.float32_inputs
def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid + binary cross entropy in one stable expression:
    (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x).  pos_weight broadcasts over the last (class) dim."""
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction),
                                "binary_cross_entropy_with_logits")
    if input.shape != target.shape:
        raise ShapeError(f"binary_cross_entropy_with_logits: target {fmt_shape(target.shape)} must have the "
                         f"input's shape {fmt_shape(input.shape)}")
    target = target.to(input.dtype if input.dtype.is_floating_point else dt.get_default_dtype())
    sp = _E.softplus(-input, threshold=float("inf"))  # log(1 + exp(-x)), stable for all x
    if pos_weight is not None:
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * sp
    else:
        loss = (1 - target) * input + sp
    return reduce_loss(loss if weight is None else loss * weight, reduction)
