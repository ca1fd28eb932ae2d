"""Pooling: max / average over sliding windows and adaptive average pooling.

max_pool2d is the fused `max_pool2d` op (gradient to the first maximum of a window, as torch);
avg_pool2d sums the im2col blocks of `unfold`.
"""

from __future__ import annotations

from ... import creation
from ... import dtype as dt
from ...errors import ShapeError, fmt_shape
from ...ops import linalg as _linalg
from ...ops import nn as _nnops
from ...tensor import Tensor
from ._args import ntuple, positive


def _pool_input(op: str, input: Tensor, nd: int = 2):
    names = "(N, C, H, W) or (C, H, W)" if nd == 2 else "(N, C, L) or (C, L)"
    if input.ndim not in (nd + 1, nd + 2):
        raise ShapeError(f"{op}: input {fmt_shape(input.shape)} has {input.ndim} dims, expected "
                         f"{nd + 2} or {nd + 1} {names}")
    return (input.unsqueeze(0), True) if input.ndim == nd + 1 else (input, False)


def _out_len(n, k, s, p, d, ceil_mode):
    span = n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = span // s + 1
    if ceil_mode and (out - 1) * s >= n + p:  # a window may not start inside the right padding
        out -= 1
    return out


def _pool_geometry(op, H, W, kernel_size, stride, padding, dilation, ceil_mode):
    k = positive(ntuple(kernel_size, 2, op, "kernel_size"), op, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else \
        positive(ntuple(stride, 2, op, "stride"), op, "stride")
    p = positive(ntuple(padding, 2, op, "padding"), op, "padding", 0)
    d = positive(ntuple(dilation, 2, op, "dilation"), op, "dilation")
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"{op}: padding {p} should be at most half of the kernel size {k}")
    out = tuple(_out_len(n, ki, si, pi, di, ceil_mode) for n, ki, si, pi, di in zip((H, W), k, s, p, d))
    if out[0] <= 0 or out[1] <= 0:
        raise ShapeError(f"{op}: input spatial size {(H, W)} is too small for kernel {k} (dilation {d}, "
                         f"padding {p}); the output would be {out}")
    # ceil_mode's last window may run past the padded input: pad it further (after) to fit
    pads = tuple((pi, max((o - 1) * si + di * (ki - 1) + 1 - n - pi, pi))
                 for n, ki, si, pi, di, o in zip((H, W), k, s, p, d, out))
    return k, s, p, d, out, pads


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over kH x kW windows.  (N, C, H, W) -> (N, C, H_out, W_out) (or unbatched (C, H, W)).

    With return_indices, also returns the flat index (h * W + w) of each maximum in its input plane.
    """
    x, unbatched = _pool_input("max_pool2d", input)
    N, C, H, W = x.shape
    k, s, p, d, (oh, ow), pads = _pool_geometry("max_pool2d", H, W, kernel_size, stride, padding, dilation,
                                                ceil_mode)
    out = _nnops.max_pool2d(x, k, d, pads, s)  # fused: running max over kernel offsets
    if unbatched:
        out = out.squeeze(0)
    if not return_indices:
        return out
    KK, L = k[0] * k[1], oh * ow
    cols = _nnops.unfold(x.detach(), k, d, pads, s, value=float("-inf")).reshape(N, KK, C, L)
    idx = cols.argmax(1)  # (N, C, L): first maximum of each window
    i, j = idx // k[1], idx % k[1]  # window offsets
    pos = creation.arange(L)
    h = (pos // ow) * s[0] - p[0] + i * d[0]
    w = (pos % ow) * s[1] - p[1] + j * d[1]
    indices = (h * W + w).reshape(N, C, oh, ow)
    return out, indices.squeeze(0) if unbatched else indices


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over windows of length k.  (N, C, L) -> (N, C, L_out) (or unbatched (C, L))."""
    x, unbatched = _pool_input("max_pool1d", input, 1)
    one = lambda v, fill: (fill,) + ntuple(v, 1, "max_pool1d", "arg")
    res = max_pool2d(x.unsqueeze(2), one(kernel_size, 1), None if stride is None else one(stride, 1),
                     one(padding, 0), one(dilation, 1), ceil_mode, return_indices)
    fix = lambda t: t.squeeze(2).squeeze(0) if unbatched else t.squeeze(2)
    return (fix(res[0]), fix(res[1])) if return_indices else fix(res)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over kH x kW windows.  (N, C, H, W) -> (N, C, H_out, W_out) (or unbatched (C, H, W)).

    count_include_pad: zero padding counts in the divisor; windows that ceil_mode lets run past
    the padding never count the part outside it (as torch).
    """
    x, unbatched = _pool_input("avg_pool2d", input)
    N, C, H, W = x.shape
    k, s, p, _, (oh, ow), pads = _pool_geometry("avg_pool2d", H, W, kernel_size, stride, padding, 1,
                                                ceil_mode)
    KK, L = k[0] * k[1], oh * ow
    sums = _nnops.unfold(x, k, (1, 1), pads, s).reshape(N, KK, C, L).sum(1)
    if divisor_override is not None:
        out = sums * (1.0 / divisor_override)
    elif count_include_pad and pads == tuple((pi, pi) for pi in p):
        out = sums * (1.0 / KK)
    else:
        # divisor per window: the number of cells it covers that count
        if count_include_pad:
            ones = creation.ones(1, 1, H + 2 * p[0], W + 2 * p[1], dtype=x.dtype)
            extra = tuple((0, b - a) for a, b in pads)
        else:
            ones, extra = creation.ones(1, 1, H, W, dtype=x.dtype), pads
        counts = _nnops.unfold(ones, k, (1, 1), extra, s).sum(1)  # (1, L)
        out = sums / counts
    out = out.reshape(N, C, oh, ow)
    return out.squeeze(0) if unbatched else out


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over windows of length k.  (N, C, L) -> (N, C, L_out) (or unbatched (C, L))."""
    x, unbatched = _pool_input("avg_pool1d", input, 1)
    one = lambda v, fill: (fill,) + ntuple(v, 1, "avg_pool1d", "arg")
    out = avg_pool2d(x.unsqueeze(2), one(kernel_size, 1), None if stride is None else one(stride, 1),
                     one(padding, 0), ceil_mode, count_include_pad).squeeze(2)
    return out.squeeze(0) if unbatched else out


def _adaptive_matrix(n: int, m: int, like: Tensor) -> Tensor:
    """(m, n) averaging matrix: row i averages input cells floor(i*n/m) .. ceil((i+1)*n/m) - 1."""
    rows = []
    for i in range(m):
        a, b = (i * n) // m, -(-((i + 1) * n) // m)
        rows.append([1.0 / (b - a) if a <= j < b else 0.0 for j in range(n)])
    return creation.tensor(rows, dtype=like.dtype if like.dtype.is_floating_point else dt.get_default_dtype())


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed output size (windows as torch).  (N, C, H, W) -> (N, C, oH, oW).

    output_size: int or pair; None keeps that input dim.
    """
    x, unbatched = _pool_input("adaptive_avg_pool2d", input)
    N, C, H, W = x.shape
    single = isinstance(output_size, int) or output_size is None
    osz = (output_size, output_size) if single else tuple(output_size)
    oh, ow = (H if osz[0] is None else int(osz[0])), (W if osz[1] is None else int(osz[1]))
    if oh <= 0 or ow <= 0:
        raise ShapeError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size!r}")
    if H % oh == 0 and W % ow == 0:
        out = x.reshape(N, C, oh, H // oh, ow, W // ow).mean((3, 5))
    else:
        # windows of uneven size: out = A_h @ x @ A_w.T with averaging matrices
        out = _linalg.matmul(_linalg.matmul(_adaptive_matrix(H, oh, x), x), _adaptive_matrix(W, ow, x).mT)
    return out.squeeze(0) if unbatched else out


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed length.  (N, C, L) -> (N, C, output_size)."""
    x, unbatched = _pool_input("adaptive_avg_pool1d", input, 1)
    osz = output_size if isinstance(output_size, int) else int(output_size[0])
    out = adaptive_avg_pool2d(x.unsqueeze(2), (1, osz)).squeeze(2)
    return out.squeeze(0) if unbatched else out
