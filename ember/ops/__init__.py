"""The op registry and the functions built on it; binds them onto Tensor as methods.

Import order matters only here: each module registers its ops, then `_bind()` gives Tensor
its methods and operators, so `x.exp()`, `ember.exp(x)` and `x + y` reach the same op.
"""

from __future__ import annotations

import builtins
import weakref

from .. import dtype as dt
from ..autograd import _Mode
from ..errors import AutogradError, DTypeError
from ..tensor import Tensor
from . import attention as _attention  # noqa: F401  (the fused sdpa op)
from . import elementwise, indexing, linalg, movement, reduce
from . import nn as _nn_ops  # unfold/fold, max_pool2d, softmax, norms for ember.nn.functional
from . import sort as _sort
from .elementwise import *  # noqa: F401,F403
from .indexing import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .movement import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .registry import REGISTRY, Op, get_op, register  # noqa: F401
from .sort import argsort, sort, topk  # noqa: F401


def _inplace(self: Tensor, fn, *args, **kwargs) -> Tensor:
    """Run `fn(self, *args)` and make `self` hold the result.

    Without autograd involvement the result is written into self's buffer (views see it)
    and the version counter is bumped, so a saved copy that is now stale raises at backward.
    When the graph is involved (self or an operand requires grad), self is rebound to the
    result and its history: views taken earlier keep the old values.
    """
    tracked = _Mode.enabled and (self.requires_grad or builtins.any(
        isinstance(a, Tensor) and a.requires_grad for a in args))
    if not tracked:
        from ..autograd import no_grad
        with no_grad():
            res = fn(self, *args, **kwargs)
        if res.dtype.category > self.dtype.category:
            raise DTypeError(f"in-place op: result type {res.dtype} can't be cast to the tensor's type "
                             f"{self.dtype}. Hint: use the out-of-place form")
        if res.shape != self.shape:
            from ..errors import ShapeError
            raise ShapeError(f"in-place op: result shape {res.shape} differs from the tensor's shape "
                             f"{self.shape} (the tensor itself cannot broadcast)")
        if not self._data.flags.writeable:
            raise AutogradError("in-place op on a read-only tensor (an expand()ed view); call .clone() first")
        self._data[...] = res._data
        self._vc[0] += 1
        return self
    if self.grad_fn is None and self.requires_grad:
        raise AutogradError("a leaf tensor that requires grad is being used in an in-place operation. Hint: "
                            "wrap parameter updates in ember.no_grad(), or use the out-of-place form")
    old = Tensor._make(self._data, self.dtype, self.device, self.requires_grad)
    old.grad_fn, old._vc, old._base = self.grad_fn, [self._vc[0]], self._base
    if self.grad_fn is not None:
        self.grad_fn._out = weakref.ref(old)
    res = fn(old, *args, **kwargs)
    if res.shape != self.shape:
        from ..errors import ShapeError
        raise ShapeError(f"in-place op: result shape {res.shape} differs from the tensor's shape {self.shape}")
    res = res.to(self.dtype)
    self._data, self.grad_fn, self.requires_grad = res._data, res.grad_fn, res.requires_grad
    # earlier nodes that saved self now fail their version check; views keep their (unchanged) data
    self._vc = [self._vc[0] + 1]
    self._base = None
    if res.grad_fn is not None:
        res.grad_fn._out = weakref.ref(self)
        res.grad_fn.out_version = self._vc[0]
    return self


def _zero_(self: Tensor) -> Tensor:
    return _fill_(self, 0)


def _fill_(self: Tensor, value) -> Tensor:
    if _Mode.enabled and self.requires_grad:
        if self.grad_fn is None:
            raise AutogradError("fill_: a leaf tensor that requires grad is being used in an in-place "
                                "operation. Hint: wrap it in ember.no_grad()")
        return _inplace(self, lambda s: s.detach().clone().fill_(value))
    self._data[...] = value._data if isinstance(value, Tensor) else value
    self._vc[0] += 1
    return self


def _copy_(self: Tensor, src: Tensor) -> Tensor:
    """Copy src's values (broadcast, cast) into self."""
    if not isinstance(src, Tensor):
        from ..creation import tensor
        src = tensor(src)
    return _inplace(self, lambda s, x: x.to(s.dtype).expand(s.shape) + 0 if x.dtype.category else
                    x.to(s.dtype).expand(s.shape).clone(), src)


def _random_(self: Tensor, draw) -> Tensor:
    self._data[...] = draw.astype(self.dtype.np)
    self._vc[0] += 1
    return self


def _normal_(self, mean=0.0, std=1.0, generator=None):
    from ..random import _gen
    return _random_(self, _gen(generator).normal(self.shape, mean, std))


def _uniform_(self, a=0.0, b=1.0, generator=None):
    from ..random import _gen
    return _random_(self, _gen(generator).uniform(self.shape, a, b))


def _bernoulli_(self, p=0.5, generator=None):
    from ..random import _gen
    return _random_(self, _gen(generator).uniform(self.shape) < p)


def _addcmul(self, t1, t2, value=1):
    return self + value * t1 * t2


def _addcdiv(self, t1, t2, value=1):
    return self + value * t1 / t2


def _rsub(a, b):
    return elementwise.sub(b, a)


def _rdiv(a, b):
    return elementwise.div(b, a)


def _bind() -> None:
    E, M, R, I = elementwise, movement, reduce, indexing  # noqa: E741
    methods = {
        # arithmetic and math
        "add": E.add, "sub": E.sub, "mul": E.mul, "div": E.div, "pow": E.pow, "neg": E.neg,
        "abs": E.abs, "sign": E.sign, "exp": E.exp, "expm1": E.expm1, "log": E.log, "log1p": E.log1p,
        "sqrt": E.sqrt, "rsqrt": E.rsqrt, "reciprocal": E.reciprocal, "sin": E.sin, "cos": E.cos,
        "tanh": E.tanh, "sigmoid": E.sigmoid, "relu": E.relu, "silu": E.silu, "square": E.square,
        "floor": E.floor, "ceil": E.ceil, "round": E.round, "trunc": E.trunc, "erf": E.erf,
        "clamp": E.clamp, "clip": E.clamp, "maximum": E.maximum, "minimum": E.minimum, "lerp": E.lerp,
        "floor_divide": E.floor_divide, "remainder": E.remainder, "where": lambda s, c, o: E.where(c, s, o),
        "eq": E.eq, "ne": E.ne, "lt": E.lt, "le": E.le, "gt": E.gt, "ge": E.ge,
        "logical_and": E.logical_and, "logical_or": E.logical_or, "logical_not": E.logical_not,
        "logical_xor": E.logical_xor, "isnan": E.isnan, "isinf": E.isinf, "isfinite": E.isfinite,
        "addcmul": _addcmul, "addcdiv": _addcdiv,
        # reductions
        "sum": R.sum, "mean": R.mean, "prod": R.prod, "max": R.max, "min": R.min, "amax": R.amax,
        "amin": R.amin, "argmax": R.argmax, "argmin": R.argmin, "var": R.var, "std": R.std,
        "logsumexp": R.logsumexp, "cumsum": R.cumsum, "all": R.all, "any": R.any,
        "sort": _sort.sort, "argsort": _sort.argsort, "topk": _sort.topk,
        # movement and indexing
        "reshape": M.reshape, "view": M.view, "permute": M.permute, "transpose": M.transpose, "t": M.t,
        "expand": M.expand, "expand_as": M.expand_as, "broadcast_to": M.broadcast_to,
        "squeeze": M.squeeze, "unsqueeze": M.unsqueeze, "flatten": M.flatten, "unflatten": M.unflatten,
        "contiguous": M.contiguous, "clone": M.clone, "split": M.split, "chunk": M.chunk,
        "unbind": M.unbind, "narrow": M.narrow, "flip": M.flip, "roll": M.roll, "repeat": M.repeat,
        "tril": M.tril, "triu": M.triu, "movedim": M.movedim,
        "gather": I.gather, "scatter": I.scatter, "scatter_add": I.scatter_add,
        "index_select": I.index_select, "masked_fill": I.masked_fill, "take_along_dim": I.take_along_dim,
        "matmul": linalg.matmul, "mm": linalg.mm, "bmm": linalg.bmm, "dot": linalg.dot,
        "__getitem__": I.getitem, "__setitem__": I.setitem,
        "view_as": lambda s, o: M.reshape(s, o.shape), "reshape_as": lambda s, o: M.reshape(s, o.shape),
    }
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(M.T)
    Tensor.mT = property(M.mT)
    operators = {
        "__add__": E.add, "__radd__": E.add, "__sub__": E.sub, "__rsub__": _rsub, "__mul__": E.mul,
        "__rmul__": E.mul, "__truediv__": E.div, "__rtruediv__": _rdiv, "__floordiv__": E.floor_divide,
        "__rfloordiv__": lambda a, b: E.floor_divide(b, a), "__mod__": E.remainder,
        "__rmod__": lambda a, b: E.remainder(b, a), "__pow__": E.pow, "__rpow__": lambda a, b: E.pow(b, a),
        "__matmul__": linalg.matmul, "__rmatmul__": lambda a, b: linalg.matmul(b, a), "__neg__": E.neg,
        "__pos__": lambda a: a, "__abs__": E.abs, "__eq__": E.eq, "__ne__": E.ne, "__lt__": E.lt,
        "__le__": E.le, "__gt__": E.gt, "__ge__": E.ge,
        "__and__": lambda a, b: E.bitwise_and(a, b), "__or__": lambda a, b: E.bitwise_or(a, b),
        "__xor__": lambda a, b: E.bitwise_xor(a, b), "__invert__": E.bitwise_not,
        "__rand__": lambda a, b: E.bitwise_and(b, a), "__ror__": lambda a, b: E.bitwise_or(b, a),
    }
    for name, fn in operators.items():
        setattr(Tensor, name, fn)
    Tensor.__hash__ = lambda self: id(self)
    # in-place forms: name_ = _inplace(name)
    for name in ("add", "sub", "mul", "div", "pow", "neg", "abs", "exp", "log", "sqrt", "rsqrt", "sigmoid",
                 "tanh", "relu", "clamp", "clip", "floor", "ceil", "round", "trunc", "masked_fill", "lerp",
                 "addcmul", "addcdiv", "reciprocal", "maximum", "minimum", "sign", "sin", "cos", "tril", "triu",
                 "scatter", "scatter_add", "remainder", "floor_divide"):
        fn = methods[name]
        setattr(Tensor, name + "_", (lambda f: lambda self, *a, **k: _inplace(self, f, *a, **k))(fn))
    inplace_ops = {"__iadd__": E.add, "__isub__": E.sub, "__imul__": E.mul, "__itruediv__": E.div}
    for name, fn in inplace_ops.items():
        setattr(Tensor, name, (lambda f: lambda self, o: _inplace(self, f, o))(fn))
    Tensor.zero_ = _zero_
    Tensor.fill_ = _fill_
    Tensor.copy_ = _copy_
    Tensor.normal_ = _normal_
    Tensor.uniform_ = _uniform_
    Tensor.bernoulli_ = _bernoulli_


_bind()
Tensor.softmax = _nn_ops.softmax  # x.softmax(dim), x.log_softmax(dim) as in torch
Tensor.log_softmax = _nn_ops.log_softmax

__all__ = sorted(
    name for mod in (elementwise, indexing, linalg, movement, reduce, _sort)
    for name, obj in vars(mod).items()
    if not name.startswith("_") and callable(obj) and getattr(obj, "__module__", "").startswith("ember.ops")
    and not isinstance(obj, type))
