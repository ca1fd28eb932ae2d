"""Elementwise ops: arithmetic, math functions, activations, comparisons and logic.

Binary ops broadcast and promote dtypes (PyTorch's rules) in their frontend, so every
kernel sees operands of one dtype. Backward rules use `reduce_to` to undo broadcasting.
"""

from __future__ import annotations

import math

from .. import dtype as dt
from ..errors import DTypeError
from ._erf import erf as _erf_kernel
from ._util import Tensor, apply, as_tensor, broadcast_shapes, const, float_input, promote, reduce_to
from .registry import ELEMENTWISE, Op, register


def _binary_shape(name):
    def shape(*ts, **attrs):
        return broadcast_shapes(name, *(t.shape for t in ts))
    return shape


# --- dtype conversion ----------------------------------------------------------------------


@register("cast")
class Cast(Op):
    """x converted to `dtype` (rounding, as NumPy's astype)."""
    upcast = False

    def dtype(x, dtype):
        return dtype

    def forward(xp, x, dtype):
        return x.astype(dtype.np)

    def backward(ctx, g):
        x = ctx.inputs[0]
        return cast(g, x.dtype) if x.dtype.category == 2 else None


def cast(x: Tensor, dtype) -> Tensor:
    """x as `dtype` (differentiable between float dtypes)."""
    dtype = dt.get_dtype(dtype)
    return x if x.dtype is dtype else apply(Cast, x, dtype=dtype)


# --- arithmetic ----------------------------------------------------------------------------


@register("add")
class Add(Op):
    shape = _binary_shape("add")

    def forward(xp, a, b):
        return xp.add(a, b)

    def backward(ctx, g):
        a, b = ctx.inputs
        need = ctx.needs_input_grad  # skip the reduction for a constant operand (x + 0.5)
        return (reduce_to(g, a.shape) if need[0] else None), (reduce_to(g, b.shape) if need[1] else None)


@register("sub")
class Sub(Op):
    shape = _binary_shape("sub")

    def forward(xp, a, b):
        return xp.subtract(a, b)

    def backward(ctx, g):
        a, b = ctx.inputs
        need = ctx.needs_input_grad
        return (reduce_to(g, a.shape) if need[0] else None), (reduce_to(-g, b.shape) if need[1] else None)


@register("mul")
class Mul(Op):
    shape = _binary_shape("mul")

    def forward(xp, a, b):
        return xp.multiply(a, b)

    def backward(ctx, g):
        a, b = ctx.inputs
        need = ctx.needs_input_grad
        ga = reduce_to(g * b, a.shape) if need[0] else None
        return ga, (reduce_to(g * a, b.shape) if need[1] else None)


@register("div")
class Div(Op):
    shape = _binary_shape("div")

    def forward(xp, a, b):
        return xp.divide(a, b)

    def backward(ctx, g):
        a, b = ctx.inputs
        ga = g / b
        gb = reduce_to(-ga * a / b, b.shape) if ctx.needs_input_grad[1] else None
        return reduce_to(ga, a.shape), gb


@register("pow")
class Pow(Op):
    shape = _binary_shape("pow")

    def forward(xp, a, b):
        if a.dtype.kind in "iu" and b.dtype.kind == "i" and (b < 0).any():
            raise DTypeError("pow: integers to negative integer powers are not allowed. Hint: convert the "
                             "base to float first (x.float() ** n)")
        return xp.power(a, b)

    def backward(ctx, g):
        a, b = ctx.inputs
        # x ** 0 has zero gradient even at x = 0, where b * a ** (b - 1) is 0 * inf
        ga = g * where(b == 0, const(g, 0), b * a ** (b - 1))
        gb = None
        if b.requires_grad:
            gb = reduce_to(g * ctx.out * log(where(a > 0, a, const(a, 1.0))), b.shape)
        return reduce_to(ga, a.shape), gb


def _check_int_divisor(xp, a, b, name):
    # NumPy quietly gives 0 for integer division by zero; torch raises
    if b.dtype.kind in "iub" and not b.all():
        raise ZeroDivisionError(f"{name}: integer division by zero. Hint: convert to float first")


@register("floor_divide")
class FloorDivide(Op):
    shape = _binary_shape("floor_divide")
    differentiable = False

    def forward(xp, a, b):
        _check_int_divisor(xp, a, b, "floor_divide")
        return xp.floor_divide(a, b)


@register("remainder")
class Remainder(Op):
    shape = _binary_shape("remainder")

    def forward(xp, a, b):
        _check_int_divisor(xp, a, b, "remainder")
        return xp.mod(a, b)

    def backward(ctx, g):
        a, b = ctx.inputs
        return reduce_to(g, a.shape), reduce_to(-g * floor_divide(a, b), b.shape)


@register("maximum")
class Maximum(Op):
    shape = _binary_shape("maximum")

    def forward(xp, a, b):
        return xp.maximum(a, b)

    def backward(ctx, g):
        # ties split the gradient evenly, as PyTorch does
        a, b = ctx.inputs
        wa = (a > b).to(g.dtype) + (a == b).to(g.dtype) * 0.5
        return reduce_to(g * wa, a.shape), reduce_to(g * (1 - wa), b.shape)


@register("minimum")
class Minimum(Op):
    shape = _binary_shape("minimum")

    def forward(xp, a, b):
        return xp.minimum(a, b)

    def backward(ctx, g):
        a, b = ctx.inputs
        wa = (a < b).to(g.dtype) + (a == b).to(g.dtype) * 0.5
        return reduce_to(g * wa, a.shape), reduce_to(g * (1 - wa), b.shape)


_BOOLS = (dt.bool_, bool)


def _keeps_dtype(t: Tensor, s) -> bool:
    """Whether Python number `s` meeting tensor `t` leaves t's dtype as the result (the common case)."""
    c = s.__class__
    return (c is float and t.dtype.category == 2) or (c is int and t.dtype.category >= 1)


def _binary(op, a, b) -> Tensor:
    if a.__class__ is Tensor:
        if b.__class__ is Tensor:
            if a.dtype is b.dtype:
                return apply(op, a, b)
        elif _keeps_dtype(a, b):
            return apply(op, a, as_tensor(b, a.dtype, a.device))
    elif b.__class__ is Tensor and _keeps_dtype(b, a):
        return apply(op, as_tensor(a, b.dtype, b.device), b)
    _, (a, b) = promote(op.name, a, b)
    return apply(op, a, b)


def add(a, b, alpha=1) -> Tensor:
    """a + alpha * b, broadcasting."""
    return _binary(Add, a, b if alpha == 1 else b * alpha)


def sub(a, b, alpha=1) -> Tensor:
    """a - alpha * b, broadcasting."""
    if getattr(a, "dtype", a.__class__) in _BOOLS or getattr(b, "dtype", b.__class__) in _BOOLS:
        raise DTypeError("sub: subtracting two bool tensors is not supported (nor a bool from a number). "
                         "Hint: to invert a mask use ~ or logical_not()")
    return _binary(Sub, a, b if alpha == 1 else b * alpha)


def mul(a, b) -> Tensor:
    """a * b, broadcasting."""
    return _binary(Mul, a, b)


def div(a, b, rounding_mode: str | None = None) -> Tensor:
    """a / b, broadcasting. True division by default (integers give the default float);
    rounding_mode 'trunc' rounds toward zero, 'floor' toward minus infinity (keeping integer dtypes)."""
    if rounding_mode is None:
        if a.__class__ is Tensor and a.dtype.category == 2:  # the common cases, without promotion
            if b.__class__ is Tensor and b.dtype is a.dtype:
                return apply(Div, a, b)
            if b.__class__ is float or b.__class__ is int:
                return apply(Div, a, as_tensor(b, a.dtype, a.device))
        elif b.__class__ is Tensor and b.dtype.category == 2 and (a.__class__ is float or a.__class__ is int):
            return apply(Div, as_tensor(a, b.dtype, b.device), b)
        d, (a, b) = promote("div", a, b)
        if d.category < 2:
            d = dt.get_default_dtype()
            a, b = cast(a, d), cast(b, d)
        return apply(Div, a, b)
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode != "trunc":
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    d, (a, b) = promote("div", a, b)
    if d.category == 2:
        return trunc(apply(Div, a, b))
    # integers: floor division, moved one up where the exact quotient is negative and not whole
    q = floor_divide(a, b)
    inexact = (remainder(a, b) != 0) & ((a < 0) ^ (b < 0))
    return q + inexact.to(d)


def floor_divide(a, b) -> Tensor:
    """a // b rounded toward minus infinity (Python semantics); not differentiable."""
    return _binary(FloorDivide, a, b)


def remainder(a, b) -> Tensor:
    """Python-style modulo: the result has the sign of b."""
    return _binary(Remainder, a, b)


def pow(a, b) -> Tensor:
    """a ** b; integer tensors to negative integer powers are an error, as in PyTorch."""
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if b == 1:
            return a * 1
        if b == 2 and a.dtype.category == 2:
            return a * a
    return _binary(Pow, a, b)


def maximum(a, b) -> Tensor:
    """Elementwise larger of a and b (ties split the gradient evenly)."""
    return _binary(Maximum, a, b)


def minimum(a, b) -> Tensor:
    """Elementwise smaller of a and b (ties split the gradient evenly)."""
    return _binary(Minimum, a, b)


def lerp(start: Tensor, end: Tensor, weight) -> Tensor:
    """start + weight * (end - start)."""
    return start + weight * (end - start)


# --- unary math --------------------------------------------------------------------------------


def _unary(name, fwd, bwd, float_only=True, doc=""):
    """Declare a unary op from its kernel and a backward rule `bwd(x, out, g)`."""
    cls = type(name.title().replace("_", ""), (Op,), {
        "__doc__": doc, "forward": lambda xp, x: fwd(xp, x),
        "backward": lambda ctx, g: bwd(ctx.inputs[0], ctx.out, g)})
    register(name, ELEMENTWISE)(cls)

    def frontend(x: Tensor) -> Tensor:
        return apply(cls, float_input(x) if float_only else x)
    frontend.__name__ = name
    frontend.__doc__ = doc
    frontend.op = cls
    return frontend


neg = _unary("neg", lambda xp, x: xp.negative(x), lambda x, y, g: -g, False, "-x")
abs = _unary("abs", lambda xp, x: xp.abs(x), lambda x, y, g: g * sign(x), False, "|x|")
sign = _unary("sign", lambda xp, x: xp.sign(x), lambda x, y, g: g * 0, False, "-1, 0 or 1")
exp = _unary("exp", lambda xp, x: xp.exp(x), lambda x, y, g: g * y, doc="e**x")
expm1 = _unary("expm1", lambda xp, x: xp.expm1(x), lambda x, y, g: g * (y + 1), doc="e**x - 1")
log = _unary("log", lambda xp, x: xp.log(x), lambda x, y, g: g / x, doc="natural log")
log1p = _unary("log1p", lambda xp, x: xp.log1p(x), lambda x, y, g: g / (x + 1), doc="log(1 + x)")
sqrt = _unary("sqrt", lambda xp, x: xp.sqrt(x), lambda x, y, g: g / (y * 2), doc="square root")
rsqrt = _unary("rsqrt", lambda xp, x: 1 / xp.sqrt(x), lambda x, y, g: g * y * y * y * -0.5, doc="1/sqrt(x)")
reciprocal = _unary("reciprocal", lambda xp, x: xp.reciprocal(x), lambda x, y, g: -g * y * y, doc="1/x")
sin = _unary("sin", lambda xp, x: xp.sin(x), lambda x, y, g: g * cos(x), doc="sine")
cos = _unary("cos", lambda xp, x: xp.cos(x), lambda x, y, g: -g * sin(x), doc="cosine")
tanh = _unary("tanh", lambda xp, x: xp.tanh(x), lambda x, y, g: apply(TanhBackward, g, y), doc="hyperbolic tangent")
sigmoid = _unary("sigmoid", lambda xp, x: _sigmoid(xp, x), lambda x, y, g: apply(SigmoidBackward, g, y),
                 doc="1/(1+e**-x)")
relu = _unary("relu", lambda xp, x: xp.maximum(x, 0).astype(x.dtype, copy=False),
              lambda x, y, g: apply(ThresholdBackward, g, x), False, "max(x, 0)")
silu = _unary("silu", lambda xp, x: x * _sigmoid(xp, x),
              lambda x, y, g: g * (sigmoid(x) * (1 + x * (1 - sigmoid(x)))), doc="x * sigmoid(x)")
trunc = _unary("trunc", lambda xp, x: xp.trunc(x), lambda x, y, g: g * 0, False, "round toward zero")
floor = _unary("floor", lambda xp, x: xp.floor(x), lambda x, y, g: g * 0, False, "round down")
ceil = _unary("ceil", lambda xp, x: xp.ceil(x), lambda x, y, g: g * 0, False, "round up")
round = _unary("round", lambda xp, x: xp.round(x), lambda x, y, g: g * 0, False, "round half to even")
erf = _unary("erf", lambda xp, x: _erf(x), lambda x, y, g: g * exp(-x * x) * (2 / math.sqrt(math.pi)),
             doc="error function")


@register("tanh_backward")
class TanhBackward(Op):
    """g * (1 - y^2) from tanh's output y, in one dispatch (three ember ops before). Differentiable in
    both: d/dg = 1 - y^2, d/dy = -2 y g (y carries the graph back to tanh's input)."""

    def forward(xp, g, y):
        d = xp.multiply(y, y, out=xp.empty_like(y, dtype=xp.result_type(g, y)))  # an array even when 0-d
        xp.subtract(1, d, out=d)
        d *= g
        return d

    def backward(ctx, gg):
        g, y = ctx.inputs
        return apply(TanhBackward, gg, y), gg * g * y * -2


@register("sigmoid_backward")
class SigmoidBackward(Op):
    """g * y * (1 - y) from sigmoid's output y, in one dispatch; d/dg = y (1 - y), d/dy = g (1 - 2y)."""

    def forward(xp, g, y):
        d = xp.subtract(1, y, out=xp.empty_like(y, dtype=xp.result_type(g, y)))
        d *= y
        d *= g
        return d

    def backward(ctx, gg):
        g, y = ctx.inputs
        return apply(SigmoidBackward, gg, y), gg * g * (1 - 2 * y)


@register("threshold_backward")
class ThresholdBackward(Op):
    """g where x > 0, else 0: relu's backward in one pass (a mask, a cast and a multiply were three).
    Its own backward: linear in g with the same mask; zero almost everywhere in x."""

    def forward(xp, g, x):
        # a multiply by the mask: NumPy's where on a data-dependent mask is ~10x slower (an inf or NaN
        # in g where x <= 0 gives NaN here, where torch gives 0)
        out = xp.greater(x, 0, out=xp.empty(x.shape, bool)).astype(g.dtype)
        out *= g
        return out

    def backward(ctx, gg):
        g, x = ctx.inputs
        return apply(ThresholdBackward, gg, x), None


def _sigmoid(xp, x):
    # 1 / (1 + e^-x) directly: for x < -88 e^-x overflows to inf and the result is the correct 0, and
    # tiny results keep their relative accuracy; no select by sign (NumPy's where on a random mask
    # costs 10x an exp). Four passes over memory, in place.
    t = xp.negative(x, out=xp.empty_like(x))  # an array even for 0-d x
    with xp.errstate(over="ignore"):
        xp.exp(t, out=t)
    t += 1
    xp.reciprocal(t, out=t)
    return t


def _erf(x):
    return _erf_kernel(x)


def square(x: Tensor) -> Tensor:
    """x * x."""
    return x * x


@register("leaky_relu")
class LeakyRelu(Op):
    def forward(xp, x, negative_slope):
        return xp.where(x > 0, x, x * negative_slope).astype(x.dtype, copy=False)

    def backward(ctx, g):
        x = ctx.inputs[0]
        return g * where(x > 0, const(g, 1.0), const(g, ctx.negative_slope))


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    return apply(LeakyRelu, x, negative_slope=float(negative_slope))


@register("elu")
class Elu(Op):
    def forward(xp, x, alpha):
        return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0))).astype(x.dtype, copy=False)

    def backward(ctx, g):
        x = ctx.inputs[0]
        return g * where(x > 0, const(g, 1.0), exp(minimum(x, 0)) * ctx.alpha)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x where x > 0, else alpha * (exp(x) - 1)."""
    return apply(Elu, float_input(x), alpha=float(alpha))


@register("softplus")
class Softplus(Op):
    """log(1 + exp(beta x)) / beta, linear above `threshold` as in PyTorch."""

    def forward(xp, x, beta, threshold):
        bx = x * beta
        soft = xp.logaddexp(0, bx) / beta
        return xp.where(bx > threshold, x, soft).astype(x.dtype, copy=False)

    def backward(ctx, g):
        x = ctx.inputs[0]
        bx = x * ctx.beta
        return g * where(bx > ctx.threshold, const(g, 1.0), sigmoid(bx))


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold."""
    return apply(Softplus, float_input(x), beta=float(beta), threshold=float(threshold))


_SQRT_2_PI = math.sqrt(2 / math.pi)


@register("gelu")
class Gelu(Op):
    """x * Phi(x); approximate='tanh' uses 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    def forward(xp, x, approximate):
        if approximate == "tanh":
            # in place, same operations in the same order as 0.5 x (1 + tanh(c (x + 0.044715 x^3))):
            # equal bits, five fewer full-size temporaries
            t = xp.multiply(x, 0.044715, out=xp.empty_like(x))  # an array even for 0-d x
            t *= x
            t *= x
            t += x
            t *= _SQRT_2_PI
            xp.tanh(t, out=t)
            t += 1
            h = x * 0.5
            h *= t
            return h.astype(x.dtype, copy=False)
        return (0.5 * x * (1 + _erf(x / math.sqrt(2)))).astype(x.dtype, copy=False)

    def backward(ctx, g):
        return apply(GeluBackward, g, ctx.inputs[0], approximate=ctx.approximate)


@register("gelu_backward")
class GeluBackward(Op):
    """g * gelu'(x) computed in one NumPy pass (GELU's backward was ~13 full-size ember ops). Its own
    backward is written with ember ops: d/dg = gelu'(x), d/dx = g * gelu''(x), so second derivatives
    of GELU still work."""

    def forward(xp, g, x, approximate):
        if approximate == "tanh":
            x2 = x * x
            t = xp.tanh(_SQRT_2_PI * (x + 0.044715 * x2 * x))
            dinner = _SQRT_2_PI * (1 + (3 * 0.044715) * x2)
            # 0.5 (1 + t) + 0.5 x (1 - t^2) dinner
            d = 1 - t * t
            d *= dinner
            d *= x
            d += t
            d += 1
            d *= 0.5
        else:
            d = 0.5 * (1 + _erf(x / math.sqrt(2))) + x * xp.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
        return (g * d).astype(g.dtype, copy=False)

    def backward(ctx, gg):
        g, x = ctx.inputs
        a = ctx.approximate
        if a == "tanh":
            inner = (x + x * x * x * 0.044715) * _SQRT_2_PI
            t = tanh(inner)
            du = (1 + x * x * (3 * 0.044715)) * _SQRT_2_PI
            d2u = x * (6 * 0.044715 * _SQRT_2_PI)
            second = (1 - t * t) * (du + 0.5 * x * (d2u - 2 * t * du * du))
        else:
            pdf = exp(x * x * -0.5) * (1 / math.sqrt(2 * math.pi))
            second = pdf * (2 - x * x)
        return apply(GeluBackward, gg, x, approximate=a), gg * g * second


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit; approximate is 'none' (exact, erf) or 'tanh'."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return apply(Gelu, float_input(x), approximate=approximate)


@register("clamp")
class Clamp(Op):
    """x limited to [min, max] (either bound may be None); gradient passes where x is inside."""

    def forward(xp, x, min, max):
        return xp.clip(x, min, max).astype(x.dtype, copy=False)

    def backward(ctx, g):
        x = ctx.inputs[0]
        inside = const(x, True).to(dt.bool_)
        if ctx.min is not None:
            inside = inside & (x >= ctx.min)
        if ctx.max is not None:
            inside = inside & (x <= ctx.max)
        return g * inside.to(g.dtype)


def clamp(x: Tensor, min=None, max=None) -> Tensor:
    """x limited to [min, max]; bounds may be numbers or tensors (then they broadcast)."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        # as torch: x keeps the gradient at ties (x == bound), NaN propagates
        out = x
        if min is not None:
            out = where(out < min, min, out)
        if max is not None:
            out = where(out > max, max, out)
        return out
    if x.dtype.category < 2 and any(isinstance(v, float) for v in (min, max)):
        x = float_input(x)
    return apply(Clamp, x, min=min, max=max)


clip = clamp


# --- selection, comparison and logic ----------------------------------------------------------


@register("where")
class Where(Op):
    """cond ? a : b, broadcasting all three."""
    shape = _binary_shape("where")
    upcast = False  # pure selection: exact in any dtype

    def dtype(cond, a, b):
        return a.dtype

    def forward(xp, cond, a, b):
        return xp.where(cond, a, b)

    def backward(ctx, g):
        c, a, b = ctx.inputs
        zero = const(g, 0)
        return None, reduce_to(where(c, g, zero), a.shape), reduce_to(where(c, zero, g), b.shape)


def where(cond: Tensor, a, b) -> Tensor:
    """Elements of a where cond is true, else of b."""
    if cond.dtype is not dt.bool_:
        raise DTypeError(f"where: condition must be a bool tensor, got {cond.dtype}. Hint: compare it, "
                         "e.g. (x > 0)")
    if a.__class__ is Tensor and b.__class__ is Tensor and a.dtype is b.dtype:
        return apply(Where, cond, a, b)
    _, (a, b) = promote("where", a, b)
    return apply(Where, cond, a, b)


def _compare(name, fn):
    cls = type(name.title(), (Op,), {"differentiable": False, "upcast": False,
                                     "shape": _binary_shape(name), "dtype": lambda *a, **k: dt.bool_,
                                     "forward": lambda xp, a, b: fn(xp, a, b)})
    register(name, ELEMENTWISE)(cls)

    def frontend(a, b) -> Tensor:
        return _binary(cls, a, b)
    frontend.__name__ = name
    frontend.op = cls
    return frontend


eq = _compare("eq", lambda xp, a, b: xp.equal(a, b))
ne = _compare("ne", lambda xp, a, b: xp.not_equal(a, b))
lt = _compare("lt", lambda xp, a, b: xp.less(a, b))
le = _compare("le", lambda xp, a, b: xp.less_equal(a, b))
gt = _compare("gt", lambda xp, a, b: xp.greater(a, b))
ge = _compare("ge", lambda xp, a, b: xp.greater_equal(a, b))
logical_and = _compare("logical_and", lambda xp, a, b: xp.logical_and(a, b))
logical_or = _compare("logical_or", lambda xp, a, b: xp.logical_or(a, b))
logical_xor = _compare("logical_xor", lambda xp, a, b: xp.logical_xor(a, b))


@register("logical_not")
class LogicalNot(Op):
    differentiable = False
    upcast = False

    def dtype(x):
        return dt.bool_

    def forward(xp, x):
        return xp.logical_not(x)


def logical_not(x: Tensor) -> Tensor:
    """True where x is zero/False (a bool tensor)."""
    return apply(LogicalNot, x)


@register("isnan")
class IsNan(Op):
    differentiable = False
    upcast = False

    def dtype(x):
        return dt.bool_

    def forward(xp, x):
        return xp.isnan(x)


def isnan(x: Tensor) -> Tensor:
    """True where x is NaN."""
    return apply(IsNan, x)


@register("isinf")
class IsInf(Op):
    differentiable = False
    upcast = False

    def dtype(x):
        return dt.bool_

    def forward(xp, x):
        return xp.isinf(x)


def isinf(x: Tensor) -> Tensor:
    """True where x is +inf or -inf."""
    return apply(IsInf, x)


def isfinite(x: Tensor) -> Tensor:
    """True where x is neither NaN nor infinite."""
    return logical_not(isnan(x) | isinf(x))


def _bitwise(name, fn):
    cls = type(name.title().replace("_", ""), (Op,), {"differentiable": False, "upcast": False,
                                                      "shape": _binary_shape(name),
                                                      "forward": lambda xp, a, b: fn(xp, a, b)})
    register(name, ELEMENTWISE)(cls)

    def frontend(a, b) -> Tensor:
        t = a if isinstance(a, Tensor) else b
        if t.dtype.category == 2:
            raise DTypeError(f"{name}: needs bool or integer tensors, got {t.dtype}")
        return _binary(cls, a, b)
    frontend.__name__ = name
    return frontend


bitwise_and = _bitwise("bitwise_and", lambda xp, a, b: xp.bitwise_and(a, b))
bitwise_or = _bitwise("bitwise_or", lambda xp, a, b: xp.bitwise_or(a, b))
bitwise_xor = _bitwise("bitwise_xor", lambda xp, a, b: xp.bitwise_xor(a, b))


@register("bitwise_not")
class BitwiseNot(Op):
    differentiable = False
    upcast = False

    def forward(xp, x):
        return xp.invert(x)


def bitwise_not(x: Tensor) -> Tensor:
    """~x for bool and integer tensors."""
    if x.dtype.category == 2:
        raise DTypeError(f"bitwise_not: needs bool or integer tensors, got {x.dtype}")
    return apply(BitwiseNot, x)
