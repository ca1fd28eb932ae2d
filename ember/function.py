"""Custom autograd functions (`ember.autograd.Function`), mapped onto the engine's nodes.

A subclass gives static `forward(ctx, *args)` (run without recording) and `backward(ctx, *grads)`
(written with ember ops, so it is differentiable again); `apply` links the outputs to a
`FunctionNode`. A function with several outputs gives each output a `_SlotNode` that hands its
gradient to the shared node, which calls `backward` once with all of them.
"""

from __future__ import annotations

import weakref

from .autograd import Node, _freed_error, _Mode, _raise_version_error, _seq, no_grad
from .errors import AutogradError, ShapeError, fmt_shape
from .tensor import Tensor


class FunctionCtx:
    """The `ctx` a Function's forward and backward share: save tensors, set flags, stash attributes."""

    def __init__(self, needs_input_grad: tuple):
        self.needs_input_grad = needs_input_grad
        self.materialize_grads = True
        self._to_save = ()
        self._saved_versions = ()
        self._non_differentiable = ()
        self._freed = False
        self._name = "Function"

    def save_for_backward(self, *tensors) -> None:
        """Keep tensors (or None) for backward; read them back with `ctx.saved_tensors`, which
        raises if one was changed in place in between."""
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward: expected tensors or None, got {type(t).__name__}")
        self._to_save = tensors

    @property
    def saved_tensors(self) -> tuple:
        if self._freed:
            raise _freed_error(self._name)
        kept = [t for t in self._to_save if t is not None]
        for t, v in zip(kept, self._saved_versions):
            if t._vc[0] != v:
                _raise_version_error(self._name, kept, self._saved_versions)
        return tuple(self._to_save)

    def mark_non_differentiable(self, *outputs) -> None:
        """Outputs that get no gradient (e.g. an argmax returned alongside a value)."""
        self._non_differentiable = outputs

    def set_materialize_grads(self, value: bool) -> None:
        """With False, backward receives None (not zeros) for outputs that got no gradient."""
        self.materialize_grads = bool(value)


class FunctionNode(Node):
    """The tape entry of one `Function.apply`: runs the user's backward for all outputs at once."""

    __slots__ = ("fn", "ctx", "arg_slots", "out_meta")

    def __init__(self, fn, ctx, args, inputs, outputs):
        self.fn, self.ctx = fn, ctx
        self.arg_slots = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.out_meta = [(o.shape, o.dtype, o.device) if isinstance(o, Tensor) else None for o in outputs]
        # Node's fields: no op, no attrs; `saved` lists the saved buffers so memory can be counted
        Node.__init__(self, None, inputs, {}, next(o for o in outputs if isinstance(o, Tensor)))
        self.saved = tuple(t._data for t in ctx._to_save if t is not None)
        self.versions = [t._vc[0] for t in inputs]

    @property
    def name(self) -> str:
        return self.fn.__name__

    def run(self, g) -> tuple:
        if self.inputs is None:
            raise _freed_error(self.name)
        grads = list(g.grads) if g.__class__ is _Slots else [g]
        for i, m in enumerate(self.out_meta):
            if grads[i] is None and m is not None and self.ctx.materialize_grads:
                from .creation import zeros
                grads[i] = zeros(m[0], dtype=m[1], device=m[2])
        res = self.fn.backward(self.ctx, *grads)
        res = res if isinstance(res, tuple) else (res,)
        n_args = len(self.ctx.needs_input_grad)
        if len(res) != n_args:
            raise AutogradError(f"{self.name}.backward returned {len(res)} gradients, expected {n_args} "
                                "(one per argument of forward, None for arguments without one)")
        for i, r in enumerate(res):
            if r is not None and i not in self.arg_slots:
                raise AutogradError(f"{self.name}.backward returned a gradient for argument {i}, which is "
                                    "not a tensor; return None in its place")
        out = []
        for j, i in enumerate(self.arg_slots):
            r, x = res[i], self.inputs[j]
            if r is not None:
                if not isinstance(r, Tensor):
                    raise AutogradError(f"{self.name}.backward returned a {type(r).__name__} for argument "
                                        f"{i}; expected a tensor or None")
                if r.shape != x.shape:
                    raise ShapeError(f"{self.name}.backward returned a gradient of shape "
                                     f"{fmt_shape(r.shape)} for argument {i} of shape {fmt_shape(x.shape)}")
                if r.dtype is not x.dtype:
                    r = r.to(x.dtype)
            out.append(r)
        return tuple(out)

    def release(self) -> None:
        self.inputs = None
        self.saved = None
        self.ctx._to_save = ()
        self.ctx._freed = True


class _Slots:
    """Per-output gradients of a multi-output function travelling as one value (adds slotwise)."""

    __slots__ = ("grads",)

    def __init__(self, grads: list):
        self.grads = grads

    def __add__(self, other: _Slots) -> _Slots:
        pairs = zip(self.grads, other.grads)
        return _Slots([b if a is None else a if b is None else a + b for a, b in pairs])


class _SlotNode:
    """grad_fn of output `index` of a multi-output function: forwards its gradient to the function."""

    __slots__ = ("function", "index", "parents", "inputs", "seq", "hooks", "_out", "out_version",
                 "__weakref__")

    def __init__(self, function: FunctionNode, index: int, out: Tensor):
        self.function, self.index = function, index
        self.parents = [function]
        self.inputs = ()
        self.seq = next(_seq)
        self.hooks = None
        self._out = weakref.ref(out)

    @property
    def name(self) -> str:
        return self.function.name

    def __repr__(self) -> str:
        return f"<{self.name}Backward[{self.index}]>"

    def run(self, g) -> tuple:
        grads = [None] * len(self.function.out_meta)
        grads[self.index] = g
        return (_Slots(grads),)

    def release(self) -> None:
        pass


class Function:
    """Base class of custom differentiable operations, as `torch.autograd.Function`.

        class Exp(ember.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                y = x.exp()
                ctx.save_for_backward(y)
                return y

            @staticmethod
            def backward(ctx, g):
                (y,) = ctx.saved_tensors
                return g * y

        y = Exp.apply(x)

    forward runs without recording; it may take non-tensor arguments and return a tensor or a
    tuple. backward gets one gradient per output and returns one per forward argument.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, *args):
        raise NotImplementedError("subclasses of Function implement a static forward(ctx, *args)")

    @staticmethod
    def backward(ctx: FunctionCtx, *grads):
        raise NotImplementedError("subclasses of Function implement a static backward(ctx, *grads)")

    @classmethod
    def apply(cls, *args):
        """Run forward on `args` and record it so backward runs in the backward pass."""
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = FunctionCtx(needs)
        ctx._name = cls.__name__
        with no_grad():
            result = cls.forward(ctx, *args)
        if not (_Mode.enabled and any(needs)):
            return result
        single = not isinstance(result, tuple)
        outputs = [result] if single else list(result)
        non_diff = {id(t) for t in ctx._non_differentiable}
        for i, o in enumerate(outputs):
            # an output that is an input (or otherwise has history) gets a fresh alias to carry ours
            if isinstance(o, Tensor) and (o.grad_fn is not None or o.requires_grad or
                                          any(o is a for a in args)):
                alias = Tensor._make(o._data, o.dtype, o.device)
                alias._vc, alias._base = o._vc, o._base
                if id(o) in non_diff:
                    non_diff.add(id(alias))
                outputs[i] = alias
        diff = [i for i, o in enumerate(outputs) if isinstance(o, Tensor) and id(o) not in non_diff
                and o.dtype.is_floating_point]
        if not diff:
            return result
        inputs = [a for a in args if isinstance(a, Tensor)]
        node = FunctionNode(cls, ctx, args, inputs, outputs)
        kept = [t for t in ctx._to_save if t is not None]
        ctx._saved_versions = tuple(t._vc[0] for t in kept)
        for i in diff:
            o = outputs[i]
            o.requires_grad = True
            o.grad_fn = node if len(outputs) == 1 else _SlotNode(node, i, o)
        return outputs[0] if single else tuple(outputs)


__all__ = ["Function", "FunctionCtx", "FunctionNode"]
