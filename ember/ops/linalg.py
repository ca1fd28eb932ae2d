"""Matrix multiplication: the opaque op that calls the device's BLAS."""

from __future__ import annotations

import math

from .. import amp as _amp
from ..errors import DTypeError, ShapeError, fmt_shape
from ._util import Tensor, apply, broadcast_shapes, reduce_to
from .registry import OPAQUE, Op, register


@register("matmul", OPAQUE)
class Matmul(Op):
    """(..., n, k) @ (..., k, m) -> (..., n, m), batch dims broadcasting. Inputs have >= 2 dims."""

    def shape(a, b):
        if a.shape[-1] != b.shape[-2]:
            raise ShapeError(f"matmul: {fmt_shape(a.shape)} @ {fmt_shape(b.shape)}: inner dimensions "
                             f"{a.shape[-1]} and {b.shape[-2]} differ. Hint: transpose one operand (.mT)")
        batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
        return batch + (a.shape[-2], b.shape[-1])

    def forward(xp, a, b):
        # NumPy hands a stack of matrices to BLAS only when it is C-contiguous; any other strides (a
        # head-split view like q.transpose(1, 2), or k.mT) take a loop 10-300x slower than the copy
        if a.ndim > 2 and not a.flags.c_contiguous:
            a = xp.ascontiguousarray(a)
        if b.ndim > 2 and not b.flags.c_contiguous:
            b = xp.ascontiguousarray(b)
        return xp.matmul(a, b)

    def backward(ctx, g):
        a, b = ctx.inputs
        ga = gb = None
        if a.ndim == 2 and b.ndim == 2:  # plain GEMMs: operands already checked, skip the frontend
            need = ctx.needs_input_grad
            ga = apply(Matmul, g, b.mT) if need[0] else None
            if need[1] and b._data.flags.f_contiguous and not b._data.flags.c_contiguous:
                # b is a transposed weight (x @ W.T): produce its gradient in W's own row-major layout,
                # so W.grad is contiguous and the optimizer reads it without a copy
                return ga, apply(Matmul, g.mT, a).mT
            return ga, (apply(Matmul, a.mT, g) if need[1] else None)
        if a.requires_grad:
            ga = reduce_to(g @ b.mT, a.shape)
        if b.requires_grad:
            if b.ndim == 2 and a.ndim > 2:
                # a weight shared across the batch: one GEMM over the flattened batch
                k = a.shape[-1]
                gb = a.reshape(-1, k).mT @ g.reshape(-1, g.shape[-1])
            else:
                gb = reduce_to(a.mT @ g, b.shape)
        return ga, gb

    def flops(out_shape, a, b):
        return 2 * math.prod(out_shape) * a.shape[-1]


@register("matmul_bias", OPAQUE)
class MatmulBias(Op):
    """a @ b + bias, bias (n,) added along the last dim: a matmul with its bias epilogue. The compiler
    makes it from `matmul` then `add` (compiler/passes/epilogue.py) so the product's output is
    written once with the bias already in; the add is the same float addition eager does."""

    def shape(a, b, bias):
        return Matmul.shape(a, b)

    def forward(xp, a, b, bias):
        out = Matmul.forward(xp, a, b)
        out += bias
        return out

    def backward(ctx, g):
        a, b, bias = ctx.inputs
        need = ctx.needs_input_grad
        return (reduce_to(g @ b.mT, a.shape) if need[0] else None,
                reduce_to(a.mT @ g, b.shape) if need[1] else None,
                reduce_to(g, bias.shape) if need[2] else None)

    def flops(out_shape, a, b, bias):
        return 2 * math.prod(out_shape) * a.shape[-1] + math.prod(out_shape)


# activations a matmul_bias_act epilogue applies: name -> (registry op, its attributes)
EPILOGUE_ACTIVATIONS = {"relu": ("relu", {}), "gelu_tanh": ("gelu", {"approximate": "tanh"}),
                        "gelu": ("gelu", {"approximate": "none"}), "tanh": ("tanh", {}),
                        "sigmoid": ("sigmoid", {}), "silu": ("silu", {})}


@register("matmul_bias_act", OPAQUE)
class MatmulBiasAct(Op):
    """act(a @ b + bias), saving the pre-activation a @ b + bias for the activation's backward.
    Only the compiler makes it (passes/epilogue.py), after the backward has been traced with the
    separate ops, so it needs no backward of its own."""

    saves = True
    differentiable = False

    def shape(a, b, bias, act):
        return Matmul.shape(a, b)

    def forward(xp, a, b, bias, act):
        from .registry import REGISTRY
        h = MatmulBias.forward(xp, a, b, bias)
        name, attrs = EPILOGUE_ACTIVATIONS[act]
        return REGISTRY[name].forward(xp, h, **attrs), h

    def flops(out_shape, a, b, bias, act):
        return 2 * math.prod(out_shape) * a.shape[-1] + 2 * math.prod(out_shape)


# activation backward ops a matmul_act_backward epilogue applies: name -> (registry op, attributes);
# each is op(g, s) with g the product and s the activation's input (or output, for tanh and sigmoid)
EPILOGUE_ACTIVATION_GRADS = {"relu": ("threshold_backward", {}),
                             "gelu_tanh": ("gelu_backward", {"approximate": "tanh"}),
                             "gelu": ("gelu_backward", {"approximate": "none"}),
                             "tanh": ("tanh_backward", {}), "sigmoid": ("sigmoid_backward", {})}


@register("matmul_act_backward", OPAQUE)
class MatmulActBackward(Op):
    """(dh, dbias) = (act_backward(a @ b, s), dh summed over its rows) for 2-D a (m, k), b (k, n)
    and s (m, n) (or any shape of m * n elements, read row-major as (m, n)): an activation's
    backward (EPILOGUE_ACTIVATION_GRADS) applied to the product that computes its incoming
    gradient, and, with `with_sum`, the following layer's bias gradient. Only the compiler makes it
    (passes/epilogue.py), after the backward was traced with the separate ops."""

    saves = True
    differentiable = False

    def shape(a, b, s, act, with_sum):
        return Matmul.shape(a, b)

    def forward(xp, a, b, s, act, with_sum):
        from .registry import REGISTRY
        g = Matmul.forward(xp, a, b)
        name, attrs = EPILOGUE_ACTIVATION_GRADS[act]
        dh = REGISTRY[name].forward(xp, g, s.reshape(g.shape), **attrs)
        return dh, (dh.sum(0) if with_sum else None)

    def flops(out_shape, a, b, s, act, with_sum):
        return 2 * math.prod(out_shape) * a.shape[-1] + 3 * math.prod(out_shape)


def matmul_bias(a: Tensor, b: Tensor, bias: Tensor) -> Tensor:
    """a @ b + bias for float tensors of one dtype, bias 1-D over the last dim of the product."""
    if a.dtype is not b.dtype or b.dtype is not bias.dtype or bias.ndim != 1 or bias.shape[0] != b.shape[-1]:
        raise ShapeError(f"matmul_bias: expected a, b and a 1-D bias of b's last size ({b.shape[-1]}) in one "
                         f"dtype, got {a.dtype} {fmt_shape(a.shape)}, {b.dtype} {fmt_shape(b.shape)}, {bias.dtype} "
                         f"{fmt_shape(bias.shape)}")
    return apply(MatmulBias, a, b, bias)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with NumPy/PyTorch semantics for 1-D and batched operands."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise DTypeError("matmul: both operands must be tensors")
    a, b = _amp.cast_pair(a, b)  # autocast: float32 operands to float16/bfloat16; no-op when off
    da, db = a._data, b._data
    if da.ndim == 2 and db.ndim == 2 and a.dtype is b.dtype and a.dtype.category == 2 and \
            da.shape[1] == db.shape[0]:
        return apply(Matmul, a, b)  # the common case: nothing left to normalise or check
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: both arguments need at least 1 dim, got {fmt_shape(a.shape)} and "
                         f"{fmt_shape(b.shape)}. Hint: use * for scalars")
    if a.dtype is not b.dtype:
        from ._util import promote
        _, (a, b) = promote("matmul", a, b)
    if a.dtype.category < 2 and a.dtype.itemsize < 4:
        a, b = a.long(), b.long()
    sa, sb = a.ndim == 1, b.ndim == 1
    ka, kb = a.shape[-1], b.shape[0] if sb else b.shape[-2]
    if ka != kb:
        raise ShapeError(f"matmul: {fmt_shape(a.shape)} @ {fmt_shape(b.shape)}: inner dimensions {ka} and "
                         f"{kb} differ. Hint: transpose one operand (.mT)")
    if sa:
        a = a.reshape(1, -1)
    if sb:
        b = b.reshape(-1, 1)
    Matmul.shape(a, b)
    if a.ndim > 2 and b.ndim == 2 and a._data.flags.c_contiguous:
        # (B, n, k) @ (k, m) as one GEMM over B*n rows: much faster than B small ones
        out = apply(Matmul, a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[-1],))
    else:
        out = apply(Matmul, a, b)
    if sa and sb:
        return out.reshape(())
    if sa:
        return out.squeeze(-2)
    if sb:
        return out.squeeze(-1)
    return out


def mm(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product of 2-D tensors: (n, k) @ (k, m) -> (n, m)."""
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"mm: expects 2-D tensors, got {fmt_shape(a.shape)} and {fmt_shape(b.shape)}")
    return matmul(a, b)


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """Batched matrix product: (B, n, k) @ (B, k, m) -> (B, n, m)."""
    if a.ndim != 3 or b.ndim != 3:
        raise ShapeError(f"bmm: expects 3-D tensors, got {fmt_shape(a.shape)} and {fmt_shape(b.shape)}")
    return matmul(a, b)


def outer(a: Tensor, b: Tensor) -> Tensor:
    """Outer product: (n,), (m,) -> (n, m)."""
    return a.reshape(-1, 1) * b.reshape(1, -1)


def dot(a: Tensor, b: Tensor) -> Tensor:
    """Inner product of two 1-D tensors: (n,), (n,) -> ()."""
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"dot: expects 1-D tensors, got {fmt_shape(a.shape)} and {fmt_shape(b.shape)}")
    return matmul(a, b)
