"""The op registry: one declaration per op, read by autograd, the compiler, the profiler and ONNX.

An op is a class of plain functions (never instantiated):

    @register("mul", kind=ELEMENTWISE)
    class Mul(Op):
        def forward(xp, a, b): return xp.multiply(a, b)        # raw buffers; xp is the device's NumPy
        def backward(ctx, g):                                   # ember Tensors in, ember Tensors out
            a, b = ctx.inputs
            return reduce_to(g * b, a.shape), reduce_to(g * a, b.shape)

`shape` and `dtype` give the output's shape and dtype from the input tensors (used by the
compiler's tracer and to turn a kernel's failure into a ShapeError); `flops` and `nbytes`
give the cost the profiler and the compiler's reports print.
"""

from __future__ import annotations

import math

ELEMENTWISE = "elementwise"
REDUCE = "reduce"
MOVEMENT = "movement"
OPAQUE = "opaque"  # matmul, conv: call the device's library
COMPOSITE = "composite"  # has a fused kernel for eager use and a `decompose` for the compiler

REGISTRY: dict[str, type[Op]] = {}


class Op:
    """Base of every op. Subclasses override the functions below that differ from the defaults."""

    name: str = ""
    kind: str = ELEMENTWISE
    differentiable = True  # False: outputs never require grad (comparisons, argmax, ...)
    upcast = True  # compute float16/bfloat16 inputs in float32, round the result
    view = False  # output may share storage with input 0 (shares its version counter)
    saves = False  # forward returns (out, saved): extra buffers for backward
    dtype = None  # function(*inputs, **attrs) -> DType; None means inputs[0].dtype
    decompose = None  # function(*inputs, **attrs) -> Tensor written with primitive ops ((out, saved) if saves)

    def shape(*inputs, **attrs):
        """Output shape from input tensors; raises ShapeError naming the op when they do not fit."""
        return inputs[0].shape

    def forward(xp, *bufs, **attrs):
        raise NotImplementedError("every op declares its own forward kernel (see docs/ops.md)")

    def backward(ctx, g):
        raise NotImplementedError(f"op {ctx.op.name!r} declares no backward rule; mark it differentiable = False "
                                  "or write one with ember ops (see docs/ops.md)")

    def flops(out_shape, *inputs, **attrs) -> int:
        """Floating-point operations for one call (elementwise default: one per output element)."""
        return math.prod(out_shape)


def register(name: str, kind: str = ELEMENTWISE):
    """Class decorator: record the op under `name`, making its functions plain (static) functions."""

    def wrap(cls):
        for key, val in list(vars(cls).items()):
            if callable(val) and not key.startswith("__") and not isinstance(val, (staticmethod, type)):
                setattr(cls, key, staticmethod(val))
        cls.name, cls.kind = name, kind
        if name in REGISTRY:
            raise RuntimeError(f"op {name!r} registered twice")
        REGISTRY[name] = cls
        return cls

    return wrap


def get_op(name: str) -> type[Op]:
    return REGISTRY[name]


def numel(shape) -> int:
    return math.prod(shape)
