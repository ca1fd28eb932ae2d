"""Network primitives for ember.nn.functional: im2col/col2im (`unfold`/`fold`), max pooling and
the fused normalisations (softmax, log_softmax, layer_norm, rms_norm).

Convolutions and pooling are written in nn.functional from `unfold`, `fold` and matmul. Each op
here has a fused NumPy forward and a backward written with ember ops, so second derivatives work:
unfold's backward is fold and fold's backward is unfold.
"""

from __future__ import annotations

import math

import numpy as np

from .. import dtype as dt
from ..autograd import _Mode
from ..errors import ShapeError, fmt_shape
from ._util import Tensor, apply, float_input, norm_dim
from .registry import COMPOSITE, MOVEMENT, OPAQUE, Op, register

# --- im2col / col2im ---------------------------------------------------------------------------


def _out_size(size, k, d, pad, s):
    return (size + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


def _geometry(H, W, kernel, dilation, padding, stride):
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel, dilation, padding, stride
    return _out_size(H, kh, dh, ph, sh), _out_size(W, kw, dw, pw, sw)


def _channels_last(xp, x, padding, value):
    """x (N, C, H, W) as a padded (N, H', W', C) array whose channel rows are contiguous."""
    N, C, H, W = x.shape
    xc = x.transpose(0, 2, 3, 1)
    (pt, pb), (pl, pr) = padding
    if pt or pb or pl or pr:
        out = xp.full((N, H + pt + pb, W + pl + pr, C), value, dtype=x.dtype)
        out[:, pt:pt + H, pl:pl + W, :] = xc
        return out
    if C > 1 and xc.strides[-1] != x.itemsize:
        xc = xp.ascontiguousarray(xc)
    return xc


def _window(i, j, oh, ow, dilation, stride):
    """Slices of the padded input that kernel offset (i, j) reads for every output position."""
    (dh, dw), (sh, sw) = dilation, stride
    return slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)


@register("unfold", MOVEMENT)
class Unfold(Op):
    """im2col: x (N, C, H, W) -> cols (N, kh*kw*C, L), L = out_h * out_w sliding blocks.

    Block entries are ordered (i, j, c) -- kernel row, kernel column, channel -- so that each
    kernel offset copies whole contiguous channel rows (torch's F.unfold orders them (c, i, j);
    ember.nn.functional.unfold reorders). Attributes are normalised pairs; `padding` is
    ((top, bottom), (left, right)) filled with `value`. The buffer is laid out (N, L, kh*kw*C),
    so `.mT` of the result is contiguous and a convolution is one GEMM over N*L rows.
    """

    upcast = False

    def shape(x, kernel, dilation, padding, stride, value):
        oh, ow = _geometry(x.shape[2], x.shape[3], kernel, dilation, padding, stride)
        return (x.shape[0], x.shape[1] * kernel[0] * kernel[1], oh * ow)

    def forward(xp, x, kernel, dilation, padding, stride, value):
        N, C, H, W = x.shape
        (kh, kw) = kernel
        oh, ow = _geometry(H, W, kernel, dilation, padding, stride)
        xc = _channels_last(xp, x, padding, value)
        cols = xp.empty((N, oh, ow, kh, kw, C), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                hs, ws = _window(i, j, oh, ow, dilation, stride)
                cols[:, :, :, i, j, :] = xc[:, hs, ws, :]
        return cols.reshape(N, oh * ow, kh * kw * C).transpose(0, 2, 1)

    def backward(ctx, g):
        x = ctx.inputs[0]
        return fold(g, x.shape[2:], ctx.kernel, ctx.dilation, ctx.padding, ctx.stride)

    def flops(out_shape, x, **attrs):
        return 0


@register("fold", MOVEMENT)
class Fold(Op):
    """col2im: cols (N, kh*kw*C, L) -> (N, C, H, W), summing overlapping blocks (unfold's adjoint).

    Same (i, j, c) block order as unfold; the result is a channels-last buffer seen as NCHW.
    """

    upcast = False

    def shape(cols, output_size, kernel, dilation, padding, stride):
        kk = kernel[0] * kernel[1]
        oh, ow = _geometry(*output_size, kernel, dilation, padding, stride)
        if cols.ndim != 3 or cols.shape[1] % kk or cols.shape[2] != oh * ow:
            raise ShapeError(f"fold: input {fmt_shape(cols.shape)} does not fit kernel {kernel} and output "
                             f"size {tuple(output_size)}: expected (N, C*{kk}, {oh * ow})")
        return (cols.shape[0], cols.shape[1] // kk) + tuple(output_size)

    def forward(xp, cols, output_size, kernel, dilation, padding, stride):
        N = cols.shape[0]
        H, W = output_size
        kh, kw = kernel
        (pt, pb), (pl, pr) = padding
        oh, ow = _geometry(H, W, kernel, dilation, padding, stride)
        C = cols.shape[1] // (kh * kw)
        blocks = cols.transpose(0, 2, 1).reshape(N, oh, ow, kh, kw, C)
        Hp, Wp = H + pt + pb, W + pl + pr
        (dh, dw), (sh, sw) = dilation, stride
        # windows that do not overlap (pooling with stride == kernel) are written, not accumulated
        disjoint = sh >= dh * (kh - 1) + 1 and sw >= dw * (kw - 1) + 1
        covered = disjoint and (sh, sw) == (kh, kw) and (dh, dw) == (1, 1) and (oh * sh, ow * sw) == (Hp, Wp)
        out = (xp.empty if covered else xp.zeros)((N, Hp, Wp, C), dtype=cols.dtype)
        for i in range(kh):
            for j in range(kw):
                hs, ws = _window(i, j, oh, ow, dilation, stride)
                if disjoint:
                    out[:, hs, ws, :] = blocks[:, :, :, i, j, :]
                else:
                    out[:, hs, ws, :] += blocks[:, :, :, i, j, :]
        return out[:, pt:pt + H, pl:pl + W, :].transpose(0, 3, 1, 2)

    def backward(ctx, g):
        return unfold(g, ctx.kernel, ctx.dilation, ctx.padding, ctx.stride)

    def flops(out_shape, cols, **attrs):
        return math.prod(cols.shape)


@register("max_pool2d", OPAQUE)
class MaxPool2d(Op):
    """Max over each kh x kw window: x (N, C, H, W) -> (N, C, out_h, out_w), padding with -inf.

    The forward keeps a running max over the kernel offsets (no im2col copy) and saves which
    offset won (the first maximum, NaN propagating, as torch). The backward routes the gradient
    to that offset with ember ops and `fold`, so it is differentiable again.
    """

    saves = True
    upcast = False

    def shape(x, kernel, dilation, padding, stride):
        return x.shape[:2] + _geometry(x.shape[2], x.shape[3], kernel, dilation, padding, stride)

    def forward(xp, x, kernel, dilation, padding, stride):
        kh, kw = kernel
        oh, ow = _geometry(x.shape[2], x.shape[3], kernel, dilation, padding, stride)
        xc = _channels_last(xp, x, padding, -xp.inf)
        best = arg = None
        for i in range(kh):
            for j in range(kw):
                hs, ws = _window(i, j, oh, ow, dilation, stride)
                v = xc[:, hs, ws, :]
                if best is None:
                    best = v.copy()
                    arg = xp.zeros(best.shape, dtype=xp.uint8 if kh * kw < 256 else xp.int32)
                    continue
                take = v > best  # strict: the first maximum wins ties
                if best.dtype.kind == "f":
                    take |= xp.isnan(v)
                xp.maximum(best, v, out=best)  # NaN propagates, as in torch
                # offsets only increase, so "arg = k where take" is a max (and much faster than copyto)
                xp.maximum(arg, take.astype(arg.dtype) * arg.dtype.type(i * kw + j), out=arg)
        return best.transpose(0, 3, 1, 2), arg

    def backward(ctx, g):
        from .. import creation
        x = ctx.inputs[0]
        arg = ctx.saved  # (N, out_h, out_w, C): winning kernel offset
        if not _Mode.enabled:  # one op (and one library kernel when compiled); create_graph needs ember ops
            return apply(MaxPool2dBackward, g, Tensor._make(arg, dt.from_numpy_dtype(arg.dtype), g.device),
                         input_hw=tuple(x.shape[2:]), kernel=ctx.kernel, dilation=ctx.dilation,
                         padding=ctx.padding, stride=ctx.stride)
        N, oh, ow, C = arg.shape
        kk = ctx.kernel[0] * ctx.kernel[1]
        won = Tensor._make(arg, dt.from_numpy_dtype(arg.dtype), g.device).unsqueeze(3) == \
            creation.arange(kk, dtype=dt.from_numpy_dtype(arg.dtype)).reshape(kk, 1)  # (N, oh, ow, kk, C)
        # a product with the 0/1 mask rather than `where`: NumPy's broadcasting where is ~10x slower
        cols = g.permute(0, 2, 3, 1).unsqueeze(3) * won.to(g.dtype)
        return fold(cols.reshape(N, oh * ow, kk * C).mT, x.shape[2:], ctx.kernel, ctx.dilation, ctx.padding,
                    ctx.stride)

    def flops(out_shape, x, kernel, **attrs):
        return math.prod(out_shape) * kernel[0] * kernel[1]


@register("max_pool2d_backward", OPAQUE)
class MaxPool2dBackward(Op):
    """max_pool2d's gradient: g (N, C, out_h, out_w) routed to the winning offsets `arg` (N, out_h,
    out_w, C) -> (N, C, H, W), overlapping windows summed. The same arithmetic as MaxPool2d's
    differentiable backward (a 0/1 mask product, then fold), as one op."""

    upcast = False
    differentiable = False  # second derivatives go through MaxPool2d's ember-op backward instead

    def shape(g, arg, input_hw, kernel, dilation, padding, stride):
        return g.shape[:2] + tuple(input_hw)

    def forward(xp, g, arg, input_hw, kernel, dilation, padding, stride):
        N, oh, ow, C = arg.shape
        kk = kernel[0] * kernel[1]
        won = arg[:, :, :, None, :] == xp.arange(kk, dtype=arg.dtype).reshape(kk, 1)  # (N, oh, ow, kk, C)
        cols = g.transpose(0, 2, 3, 1)[:, :, :, None, :] * won.astype(g.dtype)
        return Fold.forward(xp, cols.reshape(N, oh * ow, kk * C).transpose(0, 2, 1), input_hw, kernel, dilation,
                            padding, stride)

    def flops(out_shape, g, arg, **attrs):
        return math.prod(g.shape)


def _check_blocks(op, H, W, kernel, dilation, padding, stride):
    oh, ow = _geometry(H, W, kernel, dilation, padding, stride)
    if oh <= 0 or ow <= 0:
        eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
        padded = (H + sum(padding[0]), W + sum(padding[1]))
        raise ShapeError(f"{op}: the padded input size {padded} is smaller than the (dilated) kernel "
                         f"size {eff}; the output would be ({oh}, {ow}). Hint: use a smaller kernel or more "
                         "padding")
    return oh, ow


def unfold(x: Tensor, kernel, dilation, padding, stride, value: float = 0.0) -> Tensor:
    """im2col on normalised arguments (pairs; padding as ((top, bottom), (left, right))).

    x: (N, C, H, W) -> (N, kh*kw*C, L); block entries ordered (i, j, c) (see Unfold).
    """
    if x.ndim != 4:
        raise ShapeError(f"unfold: input {fmt_shape(x.shape)} has {x.ndim} dims, expected 4 (N, C, H, W)")
    _check_blocks("unfold", x.shape[2], x.shape[3], kernel, dilation, padding, stride)
    return apply(Unfold, x, kernel=tuple(kernel), dilation=tuple(dilation), padding=tuple(padding),
                 stride=tuple(stride), value=float(value))


def fold(cols: Tensor, output_size, kernel, dilation, padding, stride) -> Tensor:
    """col2im on normalised arguments: (N, kh*kw*C, L) -> (N, C, H, W), overlaps summed."""
    output_size = tuple(int(s) for s in output_size)
    _check_blocks("fold", *output_size, kernel, dilation, padding, stride)
    return apply(Fold, cols, output_size=output_size, kernel=tuple(kernel), dilation=tuple(dilation),
                 padding=tuple(padding), stride=tuple(stride))


def max_pool2d(x: Tensor, kernel, dilation, padding, stride) -> Tensor:
    """Window maxima on normalised arguments: (N, C, H, W) -> (N, C, out_h, out_w)."""
    if x.ndim != 4:
        raise ShapeError(f"max_pool2d: input {fmt_shape(x.shape)} has {x.ndim} dims, expected 4 (N, C, H, W)")
    _check_blocks("max_pool2d", x.shape[2], x.shape[3], kernel, dilation, padding, stride)
    return apply(MaxPool2d, x, kernel=tuple(kernel), dilation=tuple(dilation), padding=tuple(padding),
                 stride=tuple(stride))


# --- softmax and log_softmax -------------------------------------------------------------------


@register("softmax", COMPOSITE)
class Softmax(Op):
    """exp(x) / sum(exp(x)) along `dim`, shifted by the max for stability."""

    def forward(xp, x, dim):
        e = x - x.max(axis=dim, keepdims=True)
        xp.exp(e, out=e)  # in place: one full-size temporary fewer, same bits
        e /= e.sum(axis=dim, keepdims=True)
        return e

    def backward(ctx, g):
        y = ctx.out
        gy = g * y
        return gy - y * gy.sum(ctx.dim, keepdim=True)

    def decompose(x, dim):
        e = (x - x.amax(dim, keepdim=True).detach()).exp()
        return e / e.sum(dim, keepdim=True)

    def flops(out_shape, x, dim):
        return 5 * math.prod(out_shape)


@register("log_softmax", COMPOSITE)
class LogSoftmax(Op):
    """x - logsumexp(x) along `dim`."""

    def forward(xp, x, dim):
        z = x - x.max(axis=dim, keepdims=True)
        return z - xp.log(xp.exp(z).sum(axis=dim, keepdims=True))

    def backward(ctx, g):
        return g - ctx.out.exp() * g.sum(ctx.dim, keepdim=True)

    def decompose(x, dim):
        return x - x.logsumexp(dim, keepdim=True)

    def flops(out_shape, x, dim):
        return 5 * math.prod(out_shape)


def _softmax_input(x: Tensor, dim, dtype, name):
    if dtype is not None:
        x = x.to(dtype)
    x = float_input(x)
    return x, norm_dim(dim, x.ndim, name)


def softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """Softmax along `dim` (x cast to `dtype` first if given); shape unchanged."""
    x, d = _softmax_input(x, dim, dtype, "softmax")
    return apply(Softmax, x, dim=d)


def log_softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """log(softmax(x)) along `dim`, computed without forming softmax; shape unchanged."""
    x, d = _softmax_input(x, dim, dtype, "log_softmax")
    return apply(LogSoftmax, x, dim=d)


# --- layer_norm and rms_norm (without the affine part) --------------------------------------------


def _saved_const(buf, like: Tensor) -> Tensor:
    return Tensor._make(buf.astype(like.dtype.np, copy=False), like.dtype, like.device)


@register("layer_norm", COMPOSITE)
class LayerNorm(Op):
    """(x - mean) / sqrt(var + eps) over the last `ndim` dims (biased variance)."""

    saves = True

    def forward(xp, x, ndim, eps):
        axes = tuple(range(x.ndim - ndim, x.ndim))
        xc = x - x.mean(axis=axes, keepdims=True)
        rstd = 1.0 / xp.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
        return xc * rstd, rstd

    def backward(ctx, g):
        x, y = ctx.inputs[0], ctx.out
        axes = tuple(range(x.ndim - ctx.ndim, x.ndim))
        if _Mode.enabled:  # create_graph: rstd must depend on x for second derivatives
            rstd = (x.var(axes, keepdim=True, correction=0) + ctx.eps).rsqrt()
        else:
            rstd = _saved_const(ctx.saved, g)
        return rstd * (g - g.mean(axes, keepdim=True) - y * (g * y).mean(axes, keepdim=True))

    def decompose(x, ndim, eps):  # (out, saved), as forward returns them
        axes = tuple(range(x.ndim - ndim, x.ndim))
        xc = x - x.mean(axes, keepdim=True)
        rstd = ((xc * xc).mean(axes, keepdim=True) + eps).rsqrt()
        return xc * rstd, rstd

    def flops(out_shape, x, ndim, eps):
        return 6 * math.prod(out_shape)


@register("rms_norm", COMPOSITE)
class RmsNorm(Op):
    """x / sqrt(mean(x^2) + eps) over the last `ndim` dims."""

    saves = True

    def forward(xp, x, ndim, eps):
        axes = tuple(range(x.ndim - ndim, x.ndim))
        rrms = 1.0 / xp.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
        return x * rrms, rrms

    def backward(ctx, g):
        x, y = ctx.inputs[0], ctx.out
        axes = tuple(range(x.ndim - ctx.ndim, x.ndim))
        if _Mode.enabled:
            rrms = ((x * x).mean(axes, keepdim=True) + ctx.eps).rsqrt()
        else:
            rrms = _saved_const(ctx.saved, g)
        return rrms * (g - y * (g * y).mean(axes, keepdim=True))

    def decompose(x, ndim, eps):  # (out, saved), as forward returns them
        axes = tuple(range(x.ndim - ndim, x.ndim))
        rrms = ((x * x).mean(axes, keepdim=True) + eps).rsqrt()
        return x * rrms, rrms

    def flops(out_shape, x, ndim, eps):
        return 4 * math.prod(out_shape)


def layer_norm(x: Tensor, ndim: int, eps: float) -> Tensor:
    """Normalise over the last `ndim` dims to zero mean, unit (biased) variance; shape unchanged."""
    return apply(LayerNorm, float_input(x), ndim=int(ndim), eps=float(eps))


def rms_norm(x: Tensor, ndim: int, eps: float | None = None) -> Tensor:
    """x / rms(x) over the last `ndim` dims; eps=None means the compute dtype's machine epsilon."""
    x = float_input(x)
    if eps is None:  # torch uses the epsilon of the compute type (float32 for half precision)
        eps = float(np.finfo(np.float64 if x.dtype.itemsize == 8 else np.float32).eps)
    return apply(RmsNorm, x, ndim=int(ndim), eps=float(eps))
