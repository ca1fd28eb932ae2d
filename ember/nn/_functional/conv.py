"""linear, convolutions (1-D/2-D, transposed) and torch's F.unfold / F.fold.

A convolution is im2col (`unfold`), then one GEMM over all N*L output positions with the weight
as a (C*kh*kw, O) matrix (groups: a batched matmul over groups); a transposed convolution is the
GEMM then col2im (`fold`). Every product goes through ember.ops.linalg.matmul, so a hook there
(autocast) covers linear and conv alike.
"""

from __future__ import annotations

from ... import amp as _amp
from ...errors import ShapeError, fmt_shape
from ...ops import linalg as _linalg
from ...ops import nn as _nnops
from ...ops.movement import pad as _pad
from ...tensor import Tensor
from ._args import ntuple, positive


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    return _linalg.matmul(a, b)  # looked up at call time so a wrapped matmul (autocast) is used


@_amp.low_precision_inputs
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = input @ weight.T + bias.  input (*, in), weight (out, in), bias (out,) -> (*, out)."""
    if weight.ndim != 2:
        raise ShapeError(f"linear: weight {fmt_shape(weight.shape)} has {weight.ndim} dims, expected 2 "
                         "(out_features, in_features)")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ShapeError(f"linear: input {fmt_shape(input.shape)} has {input.shape[-1] if input.ndim else 0} "
                         f"features in its last dim, but weight {fmt_shape(weight.shape)} expects "
                         f"{weight.shape[1]}. Hint: did you forget to flatten the input (x.flatten(1))?")
    out = _matmul(input, weight.mT)
    if bias is not None:
        if bias.shape != (weight.shape[0],):
            raise ShapeError(f"linear: bias {fmt_shape(bias.shape)} must have shape ({weight.shape[0]},)")
        out = out + bias
    return out


# --- argument checks ---------------------------------------------------------------------------


def _check_conv(op: str, input: Tensor, weight: Tensor, bias, groups: int, nd: int, transposed: bool):
    names = {1: "(N, C, L)", 2: "(N, C, H, W)"}[nd]
    if input.ndim != nd + 2:
        hint = "Hint: reshape the input to " + names
        if input.ndim == nd + 1:
            hint = "Did you forget the batch dimension? Add one with x.unsqueeze(0)"
            if nd == 2:
                hint += f"; for (N, C, L) signals use {op.replace('2d', '1d')}"
        elif input.ndim in (3, 4):
            hint = f"Hint: use {op.replace(f'{nd}d', f'{input.ndim - 2}d')} for {input.ndim}-D inputs"
        raise ShapeError(f"{op}: input {fmt_shape(input.shape)} has {input.ndim} dims, expected {nd + 2} "
                         f"{names}. {hint}")
    if weight.ndim != nd + 2:
        wn = "(C_in, C_out/groups, " if transposed else "(C_out, C_in/groups, "
        raise ShapeError(f"{op}: weight {fmt_shape(weight.shape)} has {weight.ndim} dims, expected {nd + 2} "
                         f"{wn}{'kH, kW)' if nd == 2 else 'k)'}")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    C = input.shape[1]
    if transposed:
        if weight.shape[0] != C:
            raise ShapeError(f"{op}: input {fmt_shape(input.shape)} has {C} channels, but weight "
                             f"{fmt_shape(weight.shape)} expects {weight.shape[0]} (weight dim 0 is C_in)")
        if C % groups:
            raise ShapeError(f"{op}: input channels {C} are not divisible by groups={groups}")
        out_ch = weight.shape[1] * groups
    else:
        if weight.shape[1] * groups != C:
            raise ShapeError(f"{op}: input {fmt_shape(input.shape)} has {C} channels, but weight "
                             f"{fmt_shape(weight.shape)} with groups={groups} expects "
                             f"{weight.shape[1] * groups} (weight.shape[1] * groups)")
        if weight.shape[0] % groups:
            raise ShapeError(f"{op}: out channels {weight.shape[0]} are not divisible by groups={groups}")
        out_ch = weight.shape[0]
    if bias is not None and bias.shape != (out_ch,):
        raise ShapeError(f"{op}: bias {fmt_shape(bias.shape)} must have shape ({out_ch},)")


def _conv_padding(op: str, padding, kernel, dilation, stride, n: int) -> tuple:
    """((before, after), ...) per spatial dim from an int, a tuple, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                                 f"(stride {stride}). Hint: pass explicit padding")
            # as torch: the odd extra element of an even kernel's padding goes after
            return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
        raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    p = positive(ntuple(padding, n, op, "padding"), op, "padding", 0)
    return tuple((v, v) for v in p)


# --- convolutions ------------------------------------------------------------------------------


def _conv2d(input, weight, bias, stride, padding, dilation, groups, op):
    N, C, H, W = input.shape
    O, Cg, kh, kw = weight.shape
    stride = positive(ntuple(stride, 2, op, "stride"), op, "stride")
    dilation = positive(ntuple(dilation, 2, op, "dilation"), op, "dilation")
    pad = _conv_padding(op, padding, (kh, kw), dilation, stride, 2)
    oh, ow = _nnops._check_blocks(op, H, W, (kh, kw), dilation, pad, stride)
    cols = _nnops.unfold(input, (kh, kw), dilation, pad, stride)  # (N, kh*kw*C, L), buffer (N, L, kh*kw*C)
    L, KK, K = oh * ow, kh * kw, Cg * kh * kw
    w = weight.permute(0, 2, 3, 1)  # (O, kh, kw, C/groups): the (i, j, c) order of unfold's rows
    if groups == 1:
        out = _matmul(cols.mT.reshape(N * L, K), w.reshape(O, K).mT)  # one GEMM: (N*L, K) @ (K, O)
    else:
        G = groups
        rows = cols.mT.reshape(N * L, KK, G, Cg).permute(2, 0, 1, 3).reshape(G, N * L, K)
        out = _matmul(rows, w.reshape(G, O // G, K).mT).permute(1, 0, 2).reshape(N * L, O)
    if bias is not None:
        out = out + bias
    # (N*L, O) -> (N, O, oh, ow): a view (channels-last memory), no copy
    return out.reshape(N, L, O).permute(0, 2, 1).reshape(N, O, oh, ow)


@_amp.low_precision_inputs
def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D cross-correlation.  input (N, C_in, H, W), weight (C_out, C_in/groups, kH, kW), bias (C_out,)
    -> (N, C_out, H_out, W_out).  padding: int, pair, 'valid' or 'same' (stride 1 only)."""
    _check_conv("conv2d", input, weight, bias, groups, 2, False)
    return _conv2d(input, weight, bias, stride, padding, dilation, groups, "conv2d")


@_amp.low_precision_inputs
def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """1-D cross-correlation.  input (N, C_in, L), weight (C_out, C_in/groups, k) -> (N, C_out, L_out)."""
    _check_conv("conv1d", input, weight, bias, groups, 1, False)
    s = ntuple(stride, 1, "conv1d", "stride")[0]
    d = ntuple(dilation, 1, "conv1d", "dilation")[0]
    p = padding if isinstance(padding, str) else (0, ntuple(padding, 1, "conv1d", "padding")[0])
    out = _conv2d(input.unsqueeze(2), weight.unsqueeze(2), bias, (1, s), p, (1, d), groups, "conv1d")
    return out.squeeze(2)


def _conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation, op):
    N, Cin, H, W = input.shape
    _, Og, kh, kw = weight.shape
    G, O = groups, Og * groups
    stride = positive(ntuple(stride, 2, op, "stride"), op, "stride")
    dilation = positive(ntuple(dilation, 2, op, "dilation"), op, "dilation")
    pad = positive(ntuple(padding, 2, op, "padding"), op, "padding", 0)
    opad = positive(ntuple(output_padding, 2, op, "output_padding"), op, "output_padding", 0)
    if any(o >= s and o >= d for o, s, d in zip(opad, stride, dilation)):
        raise ValueError(f"{op}: output_padding {opad} must be smaller than either stride {stride} or "
                         f"dilation {dilation}")
    full = tuple((n - 1) * s + d * (k - 1) + 1 for n, s, d, k in zip((H, W), stride, dilation, (kh, kw)))
    size = tuple(f - 2 * p + o for f, p, o in zip(full, pad, opad))
    if size[0] <= 0 or size[1] <= 0:
        raise ShapeError(f"{op}: output size {size} is not positive (input {fmt_shape(input.shape)}, "
                         f"padding {pad}). Hint: reduce the padding")
    L, KK = H * W, kh * kw
    rows = input.permute(0, 2, 3, 1).reshape(N * L, Cin)
    w = weight.permute(0, 2, 3, 1)  # (C_in, kh, kw, C_out/groups): fold's (i, j, c) order
    if G == 1:
        cols = _matmul(rows, w.reshape(Cin, KK * O))  # one GEMM: (N*L, C_in) @ (C_in, kh*kw*C_out)
    else:
        rows = rows.reshape(N * L, G, Cin // G).permute(1, 0, 2)  # (G, N*L, C_in/G)
        cols = _matmul(rows, w.reshape(G, Cin // G, KK * Og))  # (G, N*L, kh*kw*C_out/G)
        cols = cols.reshape(G, N * L, KK, Og).permute(1, 2, 0, 3).reshape(N * L, KK * O)
    out = _nnops.fold(cols.reshape(N, L, O * KK).mT, full, (kh, kw), dilation, ((0, 0), (0, 0)), stride)
    extra = tuple(max(s + p - f, 0) for s, p, f in zip(size, pad, full))  # rows only output_padding reaches
    if any(extra):
        out = _pad(out, (0, extra[1], 0, extra[0]))
    out = out[:, :, pad[0]:pad[0] + size[0], pad[1]:pad[1] + size[1]]
    if bias is not None:
        out = out + bias.reshape(1, O, 1, 1)
    return out


@_amp.low_precision_inputs
def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed 2-D convolution (the gradient of conv2d w.r.t. its input).

    input (N, C_in, H, W), weight (C_in, C_out/groups, kH, kW) -> (N, C_out, H_out, W_out) with
    H_out = (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1.
    """
    _check_conv("conv_transpose2d", input, weight, bias, groups, 2, True)
    return _conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation,
                             "conv_transpose2d")


@_amp.low_precision_inputs
def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed 1-D convolution.  input (N, C_in, L), weight (C_in, C_out/groups, k)
    -> (N, C_out, L_out)."""
    _check_conv("conv_transpose1d", input, weight, bias, groups, 1, True)
    one = lambda v, name: (0 if name in ("padding", "output_padding") else 1,
                           ntuple(v, 1, "conv_transpose1d", name)[0])
    out = _conv_transpose2d(input.unsqueeze(2), weight.unsqueeze(2), bias, one(stride, "stride"),
                            one(padding, "padding"), one(output_padding, "output_padding"), groups,
                            one(dilation, "dilation"), "conv_transpose1d")
    return out.squeeze(2)


# --- torch's F.unfold / F.fold -------------------------------------------------------------------


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """im2col: (N, C, H, W) -> (N, C*kH*kW, L) sliding blocks (unbatched (C, H, W) -> (C*kH*kW, L))."""
    if input.ndim not in (3, 4):
        raise ShapeError(f"unfold: input {fmt_shape(input.shape)} has {input.ndim} dims, expected 4 "
                         "(N, C, H, W) or 3 (C, H, W)")
    x = input.unsqueeze(0) if input.ndim == 3 else input
    k = positive(ntuple(kernel_size, 2, "unfold", "kernel_size"), "unfold", "kernel_size")
    p = positive(ntuple(padding, 2, "unfold", "padding"), "unfold", "padding", 0)
    d = positive(ntuple(dilation, 2, "unfold", "dilation"), "unfold", "dilation")
    s = positive(ntuple(stride, 2, "unfold", "stride"), "unfold", "stride")
    cols = _nnops.unfold(x, k, d, tuple((v, v) for v in p), s)  # (N, kh*kw*C, L) in (i, j, c) order
    N, C, L = x.shape[0], x.shape[1], cols.shape[2]
    out = cols.reshape(N, k[0] * k[1], C, L).permute(0, 2, 1, 3).reshape(N, C * k[0] * k[1], L)
    return out.squeeze(0) if input.ndim == 3 else out


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """col2im: (N, C*kH*kW, L) -> (N, C, H, W), summing overlaps (unbatched (C*kH*kW, L) -> (C, H, W))."""
    if input.ndim not in (2, 3):
        raise ShapeError(f"fold: input {fmt_shape(input.shape)} has {input.ndim} dims, expected 3 "
                         "(N, C*kH*kW, L) or 2 (C*kH*kW, L)")
    x = input.unsqueeze(0) if input.ndim == 2 else input
    k = positive(ntuple(kernel_size, 2, "fold", "kernel_size"), "fold", "kernel_size")
    kk = k[0] * k[1]
    if x.shape[1] % kk:
        raise ShapeError(f"fold: input {fmt_shape(input.shape)}: dim -2 ({x.shape[1]}) must be divisible by "
                         f"the kernel size {k[0]}*{k[1]}")
    N, C, L = x.shape[0], x.shape[1] // kk, x.shape[2]
    x = x.reshape(N, C, kk, L).permute(0, 2, 1, 3).reshape(N, kk * C, L)  # torch's (c, i, j) -> (i, j, c)
    p = positive(ntuple(padding, 2, "fold", "padding"), "fold", "padding", 0)
    d = positive(ntuple(dilation, 2, "fold", "dilation"), "fold", "dilation")
    s = positive(ntuple(stride, 2, "fold", "stride"), "fold", "stride")
    out = _nnops.fold(x, ntuple(output_size, 2, "fold", "output_size"), k, d, tuple((v, v) for v in p), s)
    return out.squeeze(0) if input.ndim == 2 else out
