"""Reductions: PyTorch parity over dims and keepdim, float64 gradient checks, namedtuples and errors."""

import numpy as np
import pytest
import torch
from helpers import check_op, gradcheck, gradgradcheck

import ember


def rand(shape, low=-2.0, high=2.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


# (name, fn(lib, x, dim, keepdim)); dim None means "all dims" where the op allows it
REDUCTIONS = [
    ("sum", lambda t, x, d, k: x.sum() if d is None else x.sum(d, keepdim=k)),
    ("mean", lambda t, x, d, k: x.mean() if d is None else x.mean(d, keepdim=k)),
    ("prod", lambda t, x, d, k: x.prod() if d is None else x.prod(d, keepdim=k)),
    ("amax", lambda t, x, d, k: x.amax() if d is None else x.amax(d, keepdim=k)),
    ("amin", lambda t, x, d, k: x.amin() if d is None else x.amin(d, keepdim=k)),
    ("var", lambda t, x, d, k: x.var() if d is None else x.var(d, keepdim=k)),
    ("var_c0", lambda t, x, d, k: x.var(d, keepdim=k, correction=0)),
    ("var_c2", lambda t, x, d, k: x.var(d, keepdim=k, correction=2)),
    ("std", lambda t, x, d, k: x.std() if d is None else x.std(d, keepdim=k)),
    ("std_c0", lambda t, x, d, k: x.std(d, keepdim=k, correction=0)),
    ("logsumexp", lambda t, x, d, k: x.logsumexp(tuple(range(x.ndim)) if d is None else d, keepdim=k)),
    ("norm2", lambda t, x, d, k: (x * x).sum(d, keepdim=k).sqrt() if d is not None else (x * x).sum().sqrt()),
]
# torch.prod takes one int dim only (tuples: test_prod_over_several_dims)
INT_DIM_ONLY = {"prod"}
DIMS = [None, 0, 1, -1, (0, 2), (-1, 0), (0, 1, 2)]


@pytest.mark.parametrize(
    "name,fn,dim",
    [(n, f, d) for n, f in REDUCTIONS for d in DIMS if not (n in INT_DIM_ONLY and isinstance(d, tuple))],
    ids=lambda v: "" if callable(v) else str(v),
)
@pytest.mark.parametrize("keepdim", [False, True])
def test_reduction_matches_torch(name, fn, dim, keepdim):
    check_op(lambda t, x: fn(t, x, dim, keepdim), shapes=[(2, 3, 4)])


@pytest.mark.parametrize("name,fn", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
@pytest.mark.parametrize(
    "shape,dim", [((2, 3), 1), ((2, 3), (0, 1)), ((1, 4), 0), ((3, 1, 2), (0, 2)), ((4,), 0)], ids=str
)
def test_reduction_gradcheck(name, fn, shape, dim):
    gradcheck(lambda x: fn(ember, x, dim, False), [rand(shape, 0.3, 2.0)])


@pytest.mark.parametrize("name,fn", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction_gradcheck_noncontiguous(name, fn):
    gradcheck(lambda x: fn(ember, x.permute(2, 0, 1)[:, ::2], (0, 2), True), [rand((3, 4, 2), 0.3, 2.0)])


# sum, mean, amax, amin are linear away from ties: their gradient does not depend on the input
@pytest.mark.parametrize(
    "name,fn",
    [r for r in REDUCTIONS if r[0] not in ("sum", "mean", "amax", "amin")],
    ids=[r[0] for r in REDUCTIONS if r[0] not in ("sum", "mean", "amax", "amin")],
)
def test_reduction_gradgradcheck(name, fn):
    gradgradcheck(lambda x: fn(ember, x, 1, False), [rand((2, 3), 0.3, 2.0)], atol=1e-5)


@pytest.mark.parametrize("name", ["sum", "mean", "prod", "amax", "amin", "logsumexp"])
def test_reduction_of_zero_size_dims(name):
    x = np.zeros((0, 3))
    check_op(lambda t, v: getattr(v, name)(1), shapes=None, inputs=[x])
    check_op(lambda t, v: getattr(v, name)(1, keepdim=True), shapes=None, inputs=[x])
    if name in ("sum", "prod", "mean", "logsumexp"):  # these have an identity for empty reductions
        check_op(lambda t, v: getattr(v, name)(0), shapes=None, inputs=[x])


def test_reductions_of_empty_dims_without_identity_raise():
    x = ember.zeros(0, 3)
    for fn in (
        lambda: x.amax(0),
        lambda: x.max(0),
        lambda: x.argmax(0),
        lambda: x.amin(),
        lambda: x.argmin(),
    ):
        with pytest.raises(ember.ShapeError, match="cannot reduce over dimension 0 of size 0"):
            fn()


@pytest.mark.parametrize(
    "zeros", [[(0, 1)], [(0, 1), (1, 2)], [(0, 0), (0, 1)]], ids=["one", "two_rows", "two_same"]
)
def test_prod_with_zeros_matches_torch(zeros):
    x = rand((3, 4))
    for idx in zeros:
        x[idx] = 0.0
    for dim in (0, 1, None):
        check_op(lambda t, v, d=dim: v.prod() if d is None else v.prod(d), shapes=None, inputs=[x])
    gradcheck(lambda v: v.prod(1), [x])
    gradcheck(lambda v: v.prod(), [x])
    gradgradcheck(lambda v: v.prod(1), [x], atol=1e-5)


def test_prod_over_several_dims():
    x = rand((2, 3, 4))
    got = ember.tensor(x).prod((0, 2), keepdim=True)
    np.testing.assert_allclose(got.numpy(), x.prod((0, 2), keepdims=True), rtol=1e-6)
    x[1, 1, 1] = 0
    gradcheck(lambda v: v.prod((0, 2)), [x])


@pytest.mark.parametrize("fn", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim_return_values_and_indices(fn, dim, keepdim):
    check_op(lambda t, x: tuple(getattr(x, fn)(dim, keepdim=keepdim)), shapes=[(3, 4)])
    out = getattr(ember.tensor(rand((3, 4))), fn)(dim, keepdim)
    assert isinstance(out, tuple) and out._fields == ("values", "indices")
    assert out.indices.dtype is ember.int64 and out.values is out[0]
    gradcheck(lambda x: getattr(x, fn)(dim, keepdim=keepdim).values, [rand((3, 4))])


@pytest.mark.parametrize("fn", ["max", "min", "amax", "amin"])
def test_full_reduction_ties_share_the_gradient(fn):
    x = np.array([[1.0, 3.0, 3.0], [-1.0, -1.0, 0.0]])
    check_op(lambda t, v: getattr(v, fn)(), shapes=None, inputs=[x])
    if fn.startswith("a"):
        check_op(lambda t, v: getattr(v, fn)(1), shapes=None, inputs=[x])


@pytest.mark.parametrize("fn", ["argmax", "argmin"])
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_argmin_match_torch(fn, dim, keepdim):
    x = np.array([[1.0, 5.0, 5.0, -2.0], [7.0, 0.0, 7.0, -2.0], [1.0, 1.0, 1.0, 1.0]])  # ties: first wins
    e = getattr(ember.tensor(x), fn)(dim, keepdim=keepdim)
    r = getattr(torch.tensor(x), fn)(dim, keepdim=keepdim)
    assert e.dtype is ember.int64 and e.shape == tuple(r.shape)
    np.testing.assert_array_equal(e.numpy(), r.numpy())


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum_matches_torch(dim):
    check_op(lambda t, x: x.cumsum(dim), shapes=[(3, 4)])
    gradcheck(lambda x: x.cumsum(dim), [rand((3, 4))])
    gradcheck(lambda x: x.mT.cumsum(dim), [rand((4, 3))])


def test_cumsum_of_integers_and_zero_size():
    x = ember.tensor([[True, False, True]])
    assert x.cumsum(1).dtype is ember.int64 and x.cumsum(1).tolist() == [[1, 1, 2]]
    check_op(lambda t, v: v.cumsum(0), shapes=[(0, 3)])


@pytest.mark.parametrize("fn", ["all", "any"])
@pytest.mark.parametrize("dim", [None, 0, 1, (0, 1)], ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
def test_all_any_match_torch(fn, dim, keepdim):
    x = np.array([[True, False, True], [True, True, True]])
    for data in (x, x.astype(np.float32), np.zeros((0, 3), bool)):
        e, r = ember.tensor(data), torch.tensor(data)
        eo = getattr(e, fn)() if dim is None else getattr(e, fn)(dim, keepdim=keepdim)
        ro = getattr(r, fn)() if dim is None else getattr(r, fn)(dim, keepdim=keepdim)
        assert eo.dtype is ember.bool
        np.testing.assert_array_equal(eo.numpy(), ro.numpy())


@pytest.mark.parametrize("dtype", ["bool", "int32", "int64", "uint8"])
def test_integer_reductions_follow_torch_dtypes(dtype):
    data = np.array([[1, 0, 3], [2, 2, 0]])
    e, r = ember.tensor(data).to(getattr(ember, dtype)), torch.tensor(data).to(getattr(torch, dtype))
    for fn in (
        lambda t, v: v.sum(),
        lambda t, v: v.sum(0),
        lambda t, v: v.prod(1),
        lambda t, v: v.amax(1),
        lambda t, v: v.cumsum(1),
        lambda t, v: v.sum(dtype=t.float64),
        lambda t, v: v.prod(),
    ):
        eo, ro = fn(ember, e), fn(torch, r)
        assert eo.dtype.name == str(ro.dtype).split(".")[1]
        np.testing.assert_array_equal(eo.numpy(), ro.numpy())


def test_mean_of_integers_needs_a_dtype():
    with pytest.raises(ember.DTypeError, match="mean: could not infer output dtype from ember.int64"):
        ember.tensor([1, 2]).mean()
    assert ember.tensor([1, 2]).mean(dtype=ember.float32).item() == 1.5


def test_var_std_edge_cases_match_torch():
    check_op(lambda t, x: x.var(0), shapes=[(1, 3)], grad=False)  # n - correction == 0 -> nan (or inf)
    check_op(lambda t, x: x.std(1), shapes=None, inputs=[np.ones((2, 3))])  # zero std: zero gradient
    check_op(lambda t, x: x.var(unbiased=False), shapes=[(3, 4)])


def test_logsumexp_is_stable():
    x = np.array([[1000.0, 1000.0], [-1000.0, -np.inf], [-np.inf, -np.inf]])
    check_op(lambda t, v: v.logsumexp(1), shapes=None, inputs=[x])
    check_op(lambda t, v: v.logsumexp(1), shapes=None, inputs=[x[:2]], dtype="float64")


def test_reductions_in_low_precision_accumulate_in_float32():
    x = ember.ones(4096, dtype=ember.float16)
    assert x.sum().item() == 4096 and x.sum().dtype is ember.float16
    assert x.mean().item() == 1.0
    y = ember.ones(3000, dtype=ember.bfloat16)
    assert y.sum().item() == 3008.0  # the float32 sum 3000 rounded once to bfloat16 (torch gives the same)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: x.sum(2),
        lambda x: x.mean(-3),
        lambda x: x.amax((0, 5)),
        lambda x: x.argmax(2),
        lambda x: x.max(3),
        lambda x: x.var(2),
        lambda x: x.cumsum(2),
        lambda x: x.logsumexp(2),
        lambda x: x.all(2),
        lambda x: x.prod(-3),
    ],
)
def test_out_of_range_dims_raise_naming_the_op(call):
    with pytest.raises(
        ember.IndexingError,
        match=r"\w+: dimension -?\d out of range for a tensor with 2 dims "
        r"\(expected -2 <= dim < 2\)",
    ):
        call(ember.ones(2, 3))


@pytest.mark.parametrize(
    "fn",
    [
        lambda t, x: x.sum(0),
        lambda t, x: x.mean(-1),
        lambda t, x: x.amax(0),
        lambda t, x: x.prod(0),
        lambda t, x: x.logsumexp(0),
        lambda t, x: x.cumsum(0),
        lambda t, x: x.max(0)[0],
        lambda t, x: x.min(-1)[0],
        lambda t, x: x.sum((), keepdim=True),
    ],
)
def test_reductions_of_zero_dim_tensors_accept_dim_0(fn):
    check_op(fn, shapes=[()])
    assert ember.tensor(2.0).argmax(0).shape == () and ember.tensor(2.0).max(0).indices.item() == 0


def test_empty_dim_tuple_reduces_everything_like_torch():
    check_op(lambda t, x: x.sum(()) + x.amax(()) + x.mean(()), shapes=[(2, 3)])
