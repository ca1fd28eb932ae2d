"""Elementwise ops: PyTorch parity, float64 gradient checks, type promotion, errors and in-place forms."""

import numpy as np
import pytest
import torch
from helpers import check_op, gradcheck, gradgradcheck

import ember


def F(t):
    """The namespace of activation functions: torch.nn.functional, or ember itself."""
    return t.nn.functional if t is torch else t


def rand(shape, low=-2.0, high=2.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


# (name, fn(lib, x), (low, high)): every unary op, with a domain where it is smooth
UNARY = [
    ("neg", lambda t, x: -x, (-2, 2)),
    ("abs", lambda t, x: x.abs(), (-2, 2)),
    ("sign", lambda t, x: x.sign(), (-2, 2)),
    ("exp", lambda t, x: x.exp(), (-2, 2)),
    ("expm1", lambda t, x: x.expm1(), (-2, 2)),
    ("log", lambda t, x: x.log(), (0.1, 3)),
    ("log1p", lambda t, x: x.log1p(), (-0.9, 3)),
    ("sqrt", lambda t, x: x.sqrt(), (0.1, 3)),
    ("rsqrt", lambda t, x: x.rsqrt(), (0.1, 3)),
    ("reciprocal", lambda t, x: x.reciprocal(), (0.2, 3)),
    ("square", lambda t, x: x.square(), (-2, 2)),
    ("sin", lambda t, x: x.sin(), (-3, 3)),
    ("cos", lambda t, x: x.cos(), (-3, 3)),
    ("tanh", lambda t, x: x.tanh(), (-3, 3)),
    ("sigmoid", lambda t, x: x.sigmoid(), (-5, 5)),
    ("erf", lambda t, x: x.erf(), (-3, 3)),
    ("relu", lambda t, x: x.relu(), (-2, 2)),
    ("leaky_relu", lambda t, x: F(t).leaky_relu(x, 0.1), (-2, 2)),
    ("elu", lambda t, x: F(t).elu(x, 1.5), (-2, 2)),
    ("gelu", lambda t, x: F(t).gelu(x), (-4, 4)),
    ("gelu_tanh", lambda t, x: F(t).gelu(x, approximate="tanh"), (-4, 4)),
    ("silu", lambda t, x: F(t).silu(x), (-4, 4)),
    ("softplus", lambda t, x: F(t).softplus(x), (-4, 4)),
    ("softplus_beta", lambda t, x: F(t).softplus(x, beta=2.0, threshold=3.0), (-4, 4)),
    ("clamp", lambda t, x: x.clamp(-0.5, 0.7), (-2, 2)),
    ("clamp_min", lambda t, x: x.clamp(min=-0.5), (-2, 2)),
    ("clamp_max", lambda t, x: x.clamp(max=0.3), (-2, 2)),
    ("pow_scalar", lambda t, x: x**3, (-2, 2)),
    ("pow_half", lambda t, x: x**0.5, (0.1, 3)),
    ("pow_square", lambda t, x: x**2, (-2, 2)),
    ("rpow", lambda t, x: 2.0**x, (-2, 2)),
    ("scalar_ops", lambda t, x: (3 - x) * 2 / (x + 5) - 1, (-2, 2)),
    ("rdiv", lambda t, x: 1.5 / x, (0.2, 2)),
    ("floor", lambda t, x: x.floor(), (-2, 2)),
    ("ceil", lambda t, x: x.ceil(), (-2, 2)),
    ("round", lambda t, x: x.round(), (-2, 2)),
    ("trunc", lambda t, x: x.trunc(), (-2, 2)),
]
UNARY_IDS = [u[0] for u in UNARY]


@pytest.mark.parametrize("name,fn,dom", UNARY, ids=UNARY_IDS)
@pytest.mark.parametrize("shape", [(3, 4), (), (0, 3), (1, 5)])
def test_unary_matches_torch(name, fn, dom, shape):
    check_op(fn, shapes=None, inputs=[rand(shape, *dom)])


@pytest.mark.parametrize("name,fn,dom", UNARY, ids=UNARY_IDS)
@pytest.mark.parametrize("shape", [(2, 3), (1,), (), (0, 2)], ids=str)
def test_unary_gradcheck(name, fn, dom, shape):
    gradcheck(lambda x: fn(ember, x), [rand(shape, *dom)])


@pytest.mark.parametrize("name,fn,dom", UNARY, ids=UNARY_IDS)
def test_unary_gradcheck_noncontiguous(name, fn, dom):
    # a transposed view and a strided slice as inputs
    gradcheck(lambda x: fn(ember, x.mT[:, ::2]), [rand((4, 3), *dom, seed=1)])


# piecewise-linear ops: their gradient does not depend on the input, so there is no second derivative
LINEAR = {
    "neg",
    "abs",
    "sign",
    "relu",
    "leaky_relu",
    "clamp",
    "clamp_min",
    "clamp_max",
    "floor",
    "ceil",
    "round",
    "trunc",
    "add",
    "add_alpha",
    "sub",
    "sub_alpha",
    "remainder",
    "maximum",
    "minimum",
    "max_binary",
    "where",
    "lerp_scalar",
    "clamp_tensor",
}


@pytest.mark.parametrize(
    "name,fn,dom", [u for u in UNARY if u[0] not in LINEAR], ids=[u[0] for u in UNARY if u[0] not in LINEAR]
)
def test_unary_gradgradcheck(name, fn, dom):
    gradgradcheck(lambda x: fn(ember, x), [rand((2, 3), *dom, seed=2)], atol=1e-5)


# (name, fn(lib, a, b), domain of a, domain of b)
BINARY = [
    ("add", lambda t, a, b: a + b, (-2, 2), (-2, 2)),
    ("add_alpha", lambda t, a, b: t.add(a, b, alpha=2.5), (-2, 2), (-2, 2)),
    ("sub", lambda t, a, b: a - b, (-2, 2), (-2, 2)),
    ("sub_alpha", lambda t, a, b: t.sub(a, b, alpha=0.5), (-2, 2), (-2, 2)),
    ("mul", lambda t, a, b: a * b, (-2, 2), (-2, 2)),
    ("div", lambda t, a, b: a / b, (-2, 2), (0.5, 2)),
    ("pow", lambda t, a, b: a**b, (0.2, 2), (-2, 2)),
    ("remainder", lambda t, a, b: a % b, (-3, 3), (0.7, 2)),
    ("maximum", lambda t, a, b: t.maximum(a, b), (-2, 2), (-2, 2)),
    ("minimum", lambda t, a, b: t.minimum(a, b), (-2, 2), (-2, 2)),
    ("max_binary", lambda t, a, b: t.max(a, b), (-2, 2), (-2, 2)),
    ("where", lambda t, a, b: t.where(a > 0, a, b), (-2, 2), (-2, 2)),
    ("lerp_scalar", lambda t, a, b: t.lerp(a, b, 0.3), (-2, 2), (-2, 2)),
    ("lerp_tensor", lambda t, a, b: t.lerp(a, b, b.sigmoid()), (-2, 2), (-2, 2)),
    ("clamp_tensor", lambda t, a, b: a.clamp(min=b), (-2, 2), (-2, 2)),
    ("addcmul", lambda t, a, b: a.addcmul(b, b, value=0.5), (-2, 2), (-2, 2)),
]
BINARY_IDS = [b[0] for b in BINARY]
BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((2, 1, 4), (3, 1)),
    ((), (3,)),
    ((0, 4), (4,)),
    ((1,), (2, 1)),
    ((5,), ()),
]


@pytest.mark.parametrize("name,fn,da,db", BINARY, ids=BINARY_IDS)
@pytest.mark.parametrize("sa,sb", BROADCAST_SHAPES, ids=str)
def test_binary_matches_torch(name, fn, da, db, sa, sb):
    check_op(fn, shapes=None, inputs=[rand(sa, *da), rand(sb, *db, seed=1)])


@pytest.mark.parametrize("name,fn,da,db", BINARY, ids=BINARY_IDS)
@pytest.mark.parametrize(
    "sa,sb", [((2, 3), (2, 3)), ((2, 1, 3), (2, 1)), ((), (3,)), ((0, 2), (2,))], ids=str
)
def test_binary_gradcheck(name, fn, da, db, sa, sb):
    gradcheck(lambda a, b: fn(ember, a, b), [rand(sa, *da), rand(sb, *db, seed=1)])


@pytest.mark.parametrize("name,fn,da,db", BINARY, ids=BINARY_IDS)
def test_binary_gradcheck_noncontiguous(name, fn, da, db):
    gradcheck(
        lambda a, b: fn(ember, a.permute(1, 0, 2)[:, 1:], b.mT), [rand((3, 3, 2), *da), rand((2, 2), *db)]
    )


@pytest.mark.parametrize(
    "name,fn,da,db",
    [b for b in BINARY if b[0] not in LINEAR],
    ids=[b[0] for b in BINARY if b[0] not in LINEAR],
)
def test_binary_gradgradcheck(name, fn, da, db):
    gradgradcheck(
        lambda a, b: fn(ember, a, b), [rand((2, 3), *da, seed=3), rand((3,), *db, seed=4)], atol=1e-5
    )


def test_max_min_ties_split_gradient_evenly():
    check_op(
        lambda t, a, b: t.maximum(a, b) + t.minimum(a, b) * 2,
        shapes=None,
        inputs=[np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])],
    )


def test_clamp_gradient_passes_at_the_bounds():
    check_op(lambda t, x: x.clamp(-1, 1), shapes=None, inputs=[np.array([-2.0, -1.0, 0.0, 1.0, 2.0])])


def test_floor_divide_and_remainder_match_python_semantics():
    a = np.array([-7, -3, 0, 3, 7])
    b = np.array([2, -2, 3, -4, 5])
    for fn in (
        lambda t, x, y: x // y,
        lambda t, x, y: x % y,
        lambda t, x, y: t.div(x, y, rounding_mode="trunc"),
        lambda t, x, y: t.div(x, y, rounding_mode="floor"),
        lambda t, x, y: x / y,
    ):
        e = fn(ember, ember.tensor(a), ember.tensor(b))
        r = fn(torch, torch.tensor(a), torch.tensor(b))
        assert e.dtype.name == str(r.dtype).split(".")[1]
        np.testing.assert_allclose(e.numpy(), r.numpy(), rtol=1e-6)
    check_op(lambda t, x, y: x // y, shapes=None, inputs=[rand((3, 4)) * 3, rand((4,), 0.5, 2)], grad=False)


def test_gelu_exact_is_accurate_in_float32_and_float64():
    x = np.linspace(-8, 8, 2001)
    for dtype in ("float32", "float64"):
        check_op(lambda t, v: F(t).gelu(v) + v.erf(), shapes=None, inputs=[x], dtype=dtype)


def test_special_values():
    x = np.array([-np.inf, -50.0, -0.0, 0.0, 50.0, np.inf, np.nan])
    for fn in (
        lambda t, v: v.sigmoid(),
        lambda t, v: v.tanh(),
        lambda t, v: v.exp(),
        lambda t, v: v.erf(),
        lambda t, v: F(t).softplus(v),
        lambda t, v: F(t).silu(v),
        lambda t, v: v.relu(),
        lambda t, v: F(t).gelu(v, approximate="tanh"),
        lambda t, v: F(t).elu(v),
        lambda t, v: v.abs(),
    ):
        check_op(fn, shapes=None, inputs=[x], grad=False)


# --- comparisons and logic ------------------------------------------------------------------

COMPARE = [
    ("eq", lambda t, a, b: a == b),
    ("ne", lambda t, a, b: a != b),
    ("lt", lambda t, a, b: a < b),
    ("le", lambda t, a, b: a <= b),
    ("gt", lambda t, a, b: a > b),
    ("ge", lambda t, a, b: a >= b),
    ("logical_and", lambda t, a, b: t.logical_and(a > 0, b)),
    ("logical_or", lambda t, a, b: t.logical_or(a, b)),
    ("logical_xor", lambda t, a, b: t.logical_xor(a > 0, b > 0)),
    ("logical_not", lambda t, a, b: t.logical_not(a)),
    ("isnan", lambda t, a, b: t.isnan(a / b)),
    ("isinf", lambda t, a, b: t.isinf(a / b)),
    ("isfinite", lambda t, a, b: t.isfinite(a / b)),
    ("and", lambda t, a, b: (a > 0) & (b > 0)),
    ("or", lambda t, a, b: (a > 0) | (b < 0)),
    ("xor", lambda t, a, b: (a > 0) ^ (b < 0)),
    ("invert", lambda t, a, b: ~(a > b)),
]


@pytest.mark.parametrize("name,fn", COMPARE, ids=[c[0] for c in COMPARE])
def test_comparisons_return_bool_like_torch(name, fn):
    a = np.array([[0.0, 1.0, -1.0, 2.0], [3.0, 0.0, 0.0, -2.0]])
    b = np.array([0.0, 1.0, 0.0, 1.0])
    e, r = fn(ember, ember.tensor(a), ember.tensor(b)), fn(torch, torch.tensor(a), torch.tensor(b))
    assert e.dtype is ember.bool and not e.requires_grad
    np.testing.assert_array_equal(e.numpy(), r.numpy())


def test_comparison_with_grad_input_has_no_grad():
    x = ember.randn(3, requires_grad=True)
    assert not (x > 0).requires_grad and not x.eq(x).requires_grad


def test_integer_bitwise_ops():
    a, b = np.array([5, 3, -8]), np.array([3, 6, 1])
    for fn in (lambda x, y: x & y, lambda x, y: x | y, lambda x, y: x ^ y, lambda x, y: ~x):
        np.testing.assert_array_equal(
            fn(ember.tensor(a), ember.tensor(b)).numpy(), fn(torch.tensor(a), torch.tensor(b)).numpy()
        )


# --- type promotion -------------------------------------------------------------------------

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"]


def _pair(name, ndim):
    data = np.ones((2,) * ndim) if ndim else np.array(1.0)
    e = ember.tensor(data).to(getattr(ember, name))
    r = torch.tensor(data).to(getattr(torch, name))
    return e, r


def _tname(d):
    return str(d).split(".")[1]


@pytest.mark.parametrize("da", DTYPES)
@pytest.mark.parametrize("db", DTYPES)
def test_promotion_between_tensors_matches_torch(da, db):
    for na, nb in ((1, 1), (1, 0), (0, 1), (0, 0)):
        (ea, ra), (eb, rb) = _pair(da, na), _pair(db, nb)
        assert ember.result_type(ea, eb).name == _tname(torch.result_type(ra, rb)), (na, nb)
        assert (ea * eb).dtype.name == _tname((ra * rb).dtype), (na, nb)
        assert ember.where(ea > 0, ea, eb).dtype.name == _tname(torch.where(ra > 0, ra, rb).dtype)
        assert (ea == eb).dtype is ember.bool


@pytest.mark.parametrize("da", DTYPES)
@pytest.mark.parametrize("scalar", [True, 3, 2.5])
def test_promotion_with_python_scalars_matches_torch(da, scalar):
    for nd in (1, 0):
        ea, ra = _pair(da, nd)
        assert (ea + scalar).dtype.name == _tname((ra + scalar).dtype)
        assert (scalar * ea).dtype.name == _tname((scalar * ra).dtype)
        if da != "bool":
            assert (ea / scalar).dtype.name == _tname((ra / scalar).dtype)
            if scalar is not True:
                assert (ea - scalar).dtype.name == _tname((ra - scalar).dtype)


@pytest.mark.parametrize("da", ["bool", "uint8", "int32", "int64"])
def test_true_division_of_integers_gives_default_float(da):
    ea, ra = _pair(da, 1)
    assert (ea / ea).dtype is ember.float32 and (ra / ra).dtype == torch.float32


def test_promotion_examples_from_the_issue():
    i = ember.tensor([1, 2, 3])
    assert (i + 1.5).dtype is ember.float32
    assert (ember.tensor([True, False]) + 1).dtype is ember.int64
    assert (i / i).dtype is ember.float32
    assert (ember.ones(2, dtype=ember.float16) + ember.ones(2, dtype=ember.bfloat16)).dtype is ember.float32
    # a 0-dim tensor of a higher category decides; of the same category it does not
    assert (i + ember.tensor(2.0, dtype=ember.float64)).dtype is ember.float64
    assert (
        ember.ones(2, dtype=ember.float16) + ember.tensor(2.0, dtype=ember.float64)
    ).dtype is ember.float16
    assert (ember.ones(2, dtype=ember.int8) + 1000).dtype is ember.int8


def test_unary_float_functions_promote_integers():
    for fn in ("exp", "sqrt", "sigmoid", "tanh", "log1p", "sin"):
        e = getattr(ember.tensor([1, 2]), fn)()
        r = getattr(torch.tensor([1, 2]), fn)()
        assert e.dtype is ember.float32 and r.dtype == torch.float32
        np.testing.assert_allclose(e.numpy(), r.numpy(), rtol=1e-6)
    assert ember.tensor([-1, 2]).abs().dtype is ember.int64
    assert ember.tensor([-1, 2]).relu().dtype is ember.int64


def test_cast_is_differentiable_between_floats():
    check_op(lambda t, x: (x.double() * 2).float().half().float(), shapes=[(3,)], atol=1e-3, rtol=1e-3)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn,op",
    [
        (lambda a, b: a + b, "add"),
        (lambda a, b: a * b, "mul"),
        (lambda a, b: a - b, "sub"),
        (lambda a, b: a / b, "div"),
        (lambda a, b: ember.maximum(a, b), "maximum"),
        (lambda a, b: ember.where(a > 0, a, b), "where"),
        (lambda a, b: a < b, "lt"),
        (lambda a, b: a**b, "pow"),
    ],
)
def test_broadcast_error_names_the_op_and_shapes(fn, op):
    shapes = r"\(2, 3\) and \(2, 3\) and \(4,\)" if op == "where" else r"\(2, 3\) and \(4,\)"
    with pytest.raises(
        ember.ShapeError,
        match=rf"^{op}: shapes {shapes} cannot be broadcast: "
        r"dimension -1 is 3 in one and 4 in another",
    ):
        fn(ember.ones(2, 3), ember.ones(4))


def test_dtype_errors():
    with pytest.raises(ember.DTypeError, match="where: condition must be a bool tensor"):
        ember.where(ember.ones(2), ember.ones(2), ember.ones(2))
    with pytest.raises(
        ember.DTypeError, match="bitwise_and: needs bool or integer tensors, got ember.float32"
    ):
        ember.ones(2) & ember.ones(2)
    with pytest.raises(ember.DTypeError, match="sub: subtracting two bool tensors is not supported"):
        ember.tensor([True]) - ember.tensor([False])
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh'"):
        ember.gelu(ember.ones(2), approximate="fast")
    with pytest.raises(ValueError, match="clamp: at least one of min and max"):
        ember.ones(2).clamp()
    with pytest.raises(ember.DTypeError, match="pow: integers to negative integer powers are not allowed"):
        ember.tensor([2, 3]) ** -1


# --- in-place forms ---------------------------------------------------------------------------

INPLACE = [
    ("add_", lambda x: x.add_(2.0), lambda x: x + 2.0),
    ("add_alpha_", lambda x: x.add_(x, alpha=2), lambda x: x * 3),
    ("sub_", lambda x: x.sub_(1.5), lambda x: x - 1.5),
    ("mul_", lambda x: x.mul_(3.0), lambda x: x * 3.0),
    ("div_", lambda x: x.div_(4.0), lambda x: x / 4.0),
    ("pow_", lambda x: x.pow_(2), lambda x: x**2),
    ("neg_", lambda x: x.neg_(), lambda x: -x),
    ("clamp_", lambda x: x.clamp_(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5)),
    ("exp_", lambda x: x.exp_(), np.exp),
    ("sigmoid_", lambda x: x.sigmoid_(), lambda x: 1 / (1 + np.exp(-x))),
    ("relu_", lambda x: x.relu_(), lambda x: np.maximum(x, 0)),
    ("iadd", lambda x: x.__iadd__(1.0), lambda x: x + 1.0),
    ("imul", lambda x: x.__imul__(2.0), lambda x: x * 2.0),
    ("zero_", lambda x: x.zero_(), np.zeros_like),
    ("fill_", lambda x: x.fill_(7.0), lambda x: np.full_like(x, 7.0)),
    (
        "copy_",
        lambda x: x.copy_(ember.tensor([1.0, 2.0, 3.0])),
        lambda x: np.broadcast_to([1.0, 2.0, 3.0], x.shape),
    ),
    ("masked_fill_", lambda x: x.masked_fill_(x > 0, 0.0), lambda x: np.where(x > 0, 0.0, x)),
    ("lerp_", lambda x: x.lerp_(ember.ones(2, 3), 0.5), lambda x: (x + 1) / 2),
]


@pytest.mark.parametrize("name,op,ref", INPLACE, ids=[i[0] for i in INPLACE])
def test_inplace_values_and_version_counter(name, op, ref):
    a = rand((2, 3)).astype(np.float32)
    x = ember.tensor(a)
    view = x[0]
    v0 = x._version
    out = op(x)
    assert out is x
    np.testing.assert_allclose(x.numpy(), ref(a), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(view.numpy(), ref(a)[0], rtol=1e-6, atol=1e-7)  # views see the change
    assert x._version > v0 and view._version == x._version


@pytest.mark.parametrize("name,op,ref", INPLACE, ids=[i[0] for i in INPLACE])
def test_inplace_on_saved_tensor_fails_at_backward(name, op, ref):
    w = ember.randn(2, 3, requires_grad=True)
    x = ember.tensor(rand((2, 3)).astype(np.float32))
    y = (w * x).sum()  # mul saves x
    op(x)
    with pytest.raises(ember.AutogradError, match="modified by an in-place operation"):
        y.backward()


def test_inplace_on_saved_nonleaf_fails_at_backward():
    w = ember.randn(2, 3, requires_grad=True)
    h = w * 2
    y = (h * h.sin()).sum()
    h.mul_(3)
    with pytest.raises(ember.AutogradError, match="modified by an in-place operation"):
        y.backward()


def test_inplace_on_nonleaf_records_the_gradient():
    def fn(t, w):
        h = w * 1.0
        h.mul_(w)
        h.add_(1.0)
        h.clamp_(max=2.0)
        return h.exp_()

    check_op(fn, shapes=[(3, 4)])


def test_inplace_on_leaf_that_requires_grad_is_an_error():
    w = ember.ones(3, requires_grad=True)
    with pytest.raises(ember.AutogradError, match="a leaf tensor that requires grad"):
        w.add_(1.0)
    with pytest.raises(ember.AutogradError, match="leaf tensor that requires grad"):
        w.zero_()
    with ember.no_grad():
        w.add_(1.0)
        w.zero_()
    assert w.tolist() == [0.0, 0.0, 0.0]


def test_inplace_cannot_change_dtype_or_shape():
    x = ember.tensor([1, 2, 3])
    with pytest.raises(ember.DTypeError, match="result type ember.float32 can't be cast"):
        x.add_(0.5)
    with pytest.raises(ember.ShapeError, match="in-place op: result shape"):
        ember.ones(3).add_(ember.ones(2, 3))
    x.mul_(2)
    assert x.tolist() == [2, 4, 6]


def test_inplace_under_no_grad_on_an_output_does_not_corrupt_its_backward():
    x = ember.tensor([0.5, 1.0, 2.0], requires_grad=True)
    y = x.exp()  # exp's backward reads its output
    with ember.no_grad():
        y.mul_(2.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.5, 1.0, 2.0]), rtol=1e-6)
    z = x.sigmoid()
    with ember.no_grad():
        z.reshape(3)[0] = 5.0  # through a view
    x.grad = None
    z.sum().backward()
    s = 1 / (1 + np.exp(-np.array([0.5, 1.0, 2.0])))
    np.testing.assert_allclose(x.grad.numpy(), s * (1 - s), rtol=1e-6)


def test_pow_zero_exponent_has_zero_gradient_at_zero():
    check_op(lambda t, x, y: x**0 + x ** (y * 0), shapes=None, inputs=[np.array([0.0, 1.0, 2.0]), np.ones(3)])


def test_clamp_with_tensor_bounds_gives_ties_to_the_input_like_torch():
    x = np.array([[-1.0, 0.0, 1.0, 2.0, 3.0]])
    lo, hi = np.array([0.0, 0.0, 0.5, 2.0, 2.5]), np.array([1.0, 2.5, 1.0, 2.5, 3.0])
    check_op(lambda t, v, a, b: v.clamp(a, b), shapes=None, inputs=[x, lo, hi])
    check_op(lambda t, v, a: v.clamp(max=a), shapes=None, inputs=[x, lo])


def test_integer_division_is_exact_and_refuses_zero():
    a = np.array([2**40 + 1, -(2**40) - 1, 7, -7, 0])
    b = np.array([3, 3, -2, 2, 5])
    for mode in ("trunc", "floor"):
        e = ember.div(ember.tensor(a), ember.tensor(b), rounding_mode=mode)
        r = torch.div(torch.tensor(a), torch.tensor(b), rounding_mode=mode)
        assert e.dtype is ember.int64
        np.testing.assert_array_equal(e.numpy(), r.numpy())
    for fn in (lambda x: x // 0, lambda x: x % ember.tensor([1, 0])):
        with pytest.raises(ZeroDivisionError, match="integer division by zero"):
            fn(ember.tensor([1, 2]))
    assert (ember.tensor([1.0]) // 0).item() == float("inf")


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_third_derivative_matches_torch_through_its_fused_backward(approximate):
    x = ember.randn(7, dtype=ember.float64, requires_grad=True)
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    e, t = ember.gelu(x, approximate=approximate).sum(), torch.nn.functional.gelu(xt, approximate=approximate).sum()
    for _ in range(3):
        (e,), (t,) = ember.autograd.grad(e, x, create_graph=True), torch.autograd.grad(t, xt, create_graph=True)
        np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=1e-7, atol=1e-10)
        e, t = e.sum(), t.sum()
