"""matmul / @, mm, bmm, dot, outer: shapes of every rank against PyTorch, gradients and errors."""

import numpy as np
import pytest
from helpers import check_op, gradcheck, gradgradcheck

import ember


def rand(shape, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, size=shape)


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),  # mm
    ((4,), (4,)),  # dot -> 0-dim
    ((4,), (4, 5)),  # vector @ matrix
    ((3, 4), (4,)),  # matrix @ vector
    ((2, 3, 4), (4,)),  # batched matrix @ vector
    ((4,), (2, 4, 5)),  # vector @ batched matrix
    ((2, 3, 4), (2, 4, 5)),  # bmm
    ((2, 3, 4), (4, 5)),  # batch @ shared weight (one GEMM)
    ((3, 4), (2, 4, 5)),  # shared @ batch
    ((2, 1, 3, 4), (5, 4, 2)),  # broadcasting batch dims
    ((1, 3, 4), (2, 1, 4, 2)),
    ((0, 4), (4, 5)),  # zero rows
    ((3, 0), (0, 5)),  # zero inner dim: zeros
    ((2, 3, 4), (0, 4, 5)),  # zero batch after broadcasting: invalid in torch, so check separately
    ((1, 4), (4, 1)),
]
VALID = [s for s in MATMUL_SHAPES if s != ((2, 3, 4), (0, 4, 5))]


@pytest.mark.parametrize("sa,sb", VALID, ids=str)
def test_matmul_matches_torch(sa, sb):
    check_op(lambda t, a, b: a @ b, shapes=[sa, sb])
    check_op(lambda t, a, b: t.matmul(a, b), shapes=[sa, sb], noncontiguous=True)


@pytest.mark.parametrize("sa,sb", VALID, ids=str)
def test_matmul_gradcheck(sa, sb):
    gradcheck(lambda a, b: a @ b, [rand(sa), rand(sb, 1)])


@pytest.mark.parametrize(
    "sa,sb",
    [((3, 4), (4, 2)), ((4,), (4, 2)), ((2, 3, 4), (4, 2)), ((2, 3, 4), (2, 4, 2)), ((3,), (3,))],
    ids=str,
)
def test_matmul_gradgradcheck(sa, sb):
    gradgradcheck(lambda a, b: a @ b, [rand(sa), rand(sb, 1)], atol=1e-5)


def test_matmul_on_transposed_and_sliced_views():
    gradcheck(lambda a, b: a.mT @ b[:, ::2], [rand((4, 3)), rand((4, 6), 1)])
    gradcheck(lambda a, b: a.permute(1, 0, 2) @ b, [rand((3, 2, 4)), rand((4, 2), 1)])
    check_op(lambda t, a, b: a.transpose(0, 1) @ b, shapes=[(3, 2, 4), (4, 5)])


def test_mm_bmm_dot_outer():
    check_op(lambda t, a, b: t.mm(a, b), shapes=[(3, 4), (4, 2)])
    check_op(lambda t, a, b: t.bmm(a, b), shapes=[(2, 3, 4), (2, 4, 2)])
    check_op(lambda t, a, b: t.dot(a, b), shapes=[(4,), (4,)])
    check_op(lambda t, a, b: t.outer(a, b), shapes=[(3,), (4,)])
    check_op(lambda t, a, b: a.matmul(b) + b.__rmatmul__(a), shapes=[(3, 4), (4, 2)])


@pytest.mark.parametrize(
    "da,db", [("int64", "int64"), ("int32", "int64"), ("float64", "float64"), ("float32", "float64")]
)
def test_matmul_dtypes(da, db):
    import torch

    a = np.arange(6).reshape(2, 3)
    e = ember.tensor(a).to(getattr(ember, da)) @ ember.tensor(a.T).to(getattr(ember, db))
    r = (
        torch.tensor(a).to(getattr(torch, da)) @ torch.tensor(a.T).to(getattr(torch, db))
        if da == db
        else None
    )
    assert e.dtype is ember.result_type(
        ember.ones(1, dtype=getattr(ember, da)), ember.ones(1, dtype=getattr(ember, db))
    )
    np.testing.assert_array_equal(e.numpy(), a @ a.T)
    if r is not None:
        np.testing.assert_array_equal(e.numpy(), r.numpy())


@pytest.mark.parametrize(
    "call,msg",
    [
        (
            lambda: ember.ones(2, 3) @ ember.ones(2, 3),
            r"^matmul: \(2, 3\) @ \(2, 3\): inner dimensions 3 and 2 differ",
        ),
        (lambda: ember.ones(3) @ ember.ones(4), r"^matmul: \(3,\) @ \(4,\): inner dimensions 3 and 4 differ"),
        (
            lambda: ember.ones(2, 3) @ ember.ones(4),
            r"^matmul: \(2, 3\) @ \(4,\): inner dimensions 3 and 4 differ",
        ),
        (
            lambda: ember.ones(5) @ ember.ones(2, 4, 3),
            r"^matmul: \(5,\) @ \(2, 4, 3\): inner dimensions 5 and 4",
        ),
        (
            lambda: ember.ones(2, 3, 4) @ ember.ones(3, 4, 5),
            r"^matmul: shapes \(2,\) and \(3,\) cannot be broadcast",
        ),
        (
            lambda: ember.ones(2, 3, 4) @ ember.ones(0, 4, 5),
            r"^matmul: shapes \(2,\) and \(0,\) cannot be broadcast",
        ),
        (
            lambda: ember.ones(()) @ ember.ones(3),
            r"^matmul: both arguments need at least 1 dim, got \(\) and \(3,\)",
        ),
        (
            lambda: ember.mm(ember.ones(2, 3, 4), ember.ones(4, 2)),
            r"^mm: expects 2-D tensors, got \(2, 3, 4\)",
        ),
        (lambda: ember.bmm(ember.ones(3, 4), ember.ones(4, 2)), r"^bmm: expects 3-D tensors, got \(3, 4\)"),
        (lambda: ember.dot(ember.ones(3, 4), ember.ones(4)), r"^dot: expects 1-D tensors, got \(3, 4\)"),
    ],
)
def test_matmul_errors(call, msg):
    with pytest.raises(ember.ShapeError, match=msg):
        call()


def test_matmul_of_non_tensor_raises():
    with pytest.raises(ember.DTypeError, match="matmul: both operands must be tensors"):
        ember.ones(2, 2) @ [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize("shapes", [[(5, 4), (4, 6), (6,)], [(2, 3, 4), (4, 6), (6,)]])
def test_matmul_bias_matches_torch_and_finite_differences(shapes):
    from ember.ops.linalg import matmul_bias

    def fn(lib, a, b, bias):
        return matmul_bias(a, b, bias) if lib is ember else a @ b + bias
    check_op(fn, shapes)
    rng = np.random.default_rng(0)
    gradcheck(lambda a, b, bias: matmul_bias(a, b, bias), [rng.normal(size=s) for s in shapes])
