"""Indexing: x[key] forward and backward against PyTorch, x[key] = v, and errors naming the index."""

import numpy as np
import pytest
import torch
from helpers import check_op, gradcheck, gradgradcheck

import ember


def rand(shape, low=-2.0, high=2.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def T(t, data, dtype=None):
    return t.tensor(data) if dtype is None else t.tensor(data, dtype=getattr(t, dtype))


# (name, key(lib)); applied to a (3, 4, 5) input
KEYS = [
    ("int", lambda t: 1),
    ("neg_int", lambda t: -1),
    ("int_int", lambda t: (2, 3)),
    ("int_int_int", lambda t: (0, -1, 2)),
    ("slice", lambda t: slice(1, 3)),
    ("slice_step", lambda t: (slice(None), slice(None, None, 2))),
    ("slice_neg", lambda t: (slice(-2, None), slice(None, -1))),
    ("slice_empty", lambda t: slice(2, 1)),
    ("slice_past_end", lambda t: (slice(1, 10), slice(-10, 2))),
    ("none", lambda t: None),
    ("none_mid", lambda t: (slice(None), None, 1)),
    ("ellipsis", lambda t: (Ellipsis, 1)),
    ("ellipsis_mid", lambda t: (0, Ellipsis, slice(1, 3))),
    ("ellipsis_none", lambda t: (Ellipsis, None)),
    ("int_tensor", lambda t: T(t, [2, 0, 2])),
    ("int_tensor_2d", lambda t: T(t, [[0, 1], [2, 2]])),
    ("int_tensor_neg", lambda t: T(t, [-1, 0])),
    ("int_tensor_0d", lambda t: T(t, 1)),
    ("int_list", lambda t: [0, 2, 2]),
    ("int_tensor_dim1", lambda t: (slice(None), T(t, [3, 0, 3]))),
    ("two_int_tensors", lambda t: (T(t, [0, 2, 1]), T(t, [1, 1, 3]))),
    ("broadcast_int_tensors", lambda t: (T(t, [[0], [2]]), slice(None), T(t, [1, 4, 4]))),
    ("separated_advanced", lambda t: (T(t, [0, 2]), slice(1, 3), T(t, [4, 0]))),
    ("adv_and_int", lambda t: (1, T(t, [0, 3, 3]))),
    ("adv_and_none", lambda t: (None, T(t, [1, 0]), Ellipsis)),
    ("int32_tensor", lambda t: T(t, [2, 1], "int32")),
    ("bool_mask_full", lambda t: T(t, np.random.default_rng(1).uniform(size=(3, 4, 5)) > 0.5)),
    ("bool_mask_dim0", lambda t: T(t, [True, False, True])),
    ("bool_mask_2d", lambda t: T(t, np.eye(3, 4, dtype=bool))),
    ("bool_mask_dim1", lambda t: (slice(None), T(t, [False, True, True, False]))),
    ("bool_mask_none", lambda t: T(t, [False, False, False])),
    ("bool_scalar", lambda t: True),
]


@pytest.mark.parametrize("name,key", KEYS, ids=[k[0] for k in KEYS])
def test_getitem_matches_torch(name, key):
    check_op(lambda t, x: x[key(t)], shapes=[(3, 4, 5)])


@pytest.mark.parametrize("name,key", KEYS, ids=[k[0] for k in KEYS])
def test_getitem_matches_torch_on_noncontiguous(name, key):
    check_op(lambda t, x: x.permute(1, 2, 0).permute(2, 0, 1)[key(t)], shapes=[(3, 4, 5)], noncontiguous=True)


@pytest.mark.parametrize("name,key", KEYS, ids=[k[0] for k in KEYS])
def test_getitem_gradcheck_and_gradgradcheck(name, key):
    gradcheck(lambda x: x[key(ember)], [rand((3, 4, 5))])
    gradgradcheck(lambda x: x[key(ember)] ** 2, [rand((3, 4, 5), seed=1)], atol=1e-5)


def test_repeated_indices_accumulate_gradient():
    check_op(lambda t, x: x[T(t, [0, 0, 1, 0])] * x[T(t, [[1, 1]])].sum(), shapes=[(2, 3)])
    check_op(lambda t, x: x[T(t, [0, 0]), T(t, [2, 2])], shapes=[(2, 3)])


def test_getitem_of_zero_size_tensor():
    check_op(lambda t, x: x[:, 1:], shapes=[(0, 3)])
    check_op(lambda t, x: x[T(t, [], "int64")], shapes=[(2, 3)])


def test_basic_indexing_returns_views():
    x = ember.arange(12.0).reshape(3, 4)
    for v in (x[1], x[1, 2], x[:, 1:3], x[None], x[..., 0], x[::2]):
        assert np.shares_memory(v._data, x._data) and v._vc is x._vc
    assert not np.shares_memory(x[ember.tensor([0, 1])]._data, x._data)


def test_scalar_tensor_index_is_like_an_int():
    x = ember.arange(12).reshape(3, 4)
    assert x[ember.tensor(2)].tolist() == [8, 9, 10, 11]
    assert x[np.int64(1), np.array([0, 3])].tolist() == [4, 7]


# --- setitem ----------------------------------------------------------------------------------

SETS = [
    ("int", lambda t: 1, lambda t: 5.0),
    ("slice", lambda t: (slice(None), slice(1, 3)), lambda t: T(t, [7.0, 8.0])),
    ("ellipsis", lambda t: (Ellipsis, 0), lambda t: -1.0),
    ("mask", lambda t: T(t, np.arange(12).reshape(3, 4) % 3 == 0), lambda t: 0.0),
    ("mask_values", lambda t: T(t, np.arange(12).reshape(3, 4) % 5 == 0), lambda t: T(t, [1.0, 2.0, 3.0])),
    ("int_tensor", lambda t: T(t, [2, 0]), lambda t: T(t, [[1.0], [2.0]])),
    ("two_int_tensors", lambda t: (T(t, [0, 2]), T(t, [1, 3])), lambda t: T(t, [9.0, 8.0])),
    ("int_value_cast", lambda t: 0, lambda t: T(t, [1, 2, 3, 4])),
    ("tensor_0d", lambda t: (1, 1), lambda t: T(t, 4.5)),
]


@pytest.mark.parametrize("name,key,value", SETS, ids=[s[0] for s in SETS])
def test_setitem_matches_torch(name, key, value):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    e, r = ember.tensor(data), torch.tensor(data)
    view = e[0]
    v0 = e._version
    e[key(ember)] = value(ember)
    r[key(torch)] = value(torch)
    np.testing.assert_array_equal(e.numpy(), r.numpy())
    np.testing.assert_array_equal(view.numpy(), r[0].numpy())
    assert e._version > v0 and view._version == e._version


def test_setitem_on_a_saved_tensor_fails_at_backward():
    w = ember.ones(3, requires_grad=True)
    x = ember.ones(3)
    y = (w * x).sum()
    x[0] = 2.0
    with pytest.raises(ember.AutogradError, match="modified by an in-place operation"):
        y.backward()


def test_setitem_on_a_tensor_that_requires_grad_is_refused():
    w = ember.ones(3, requires_grad=True)
    with pytest.raises(ember.AutogradError, match="setitem: in-place assignment"):
        w[0] = 2.0
    with pytest.raises(ember.AutogradError, match="setitem: in-place assignment"):
        ember.zeros(3)[1] = w[0]
    with ember.no_grad():
        w[0] = 2.0
    assert w.tolist() == [2.0, 1.0, 1.0]


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,msg",
    [
        (3, "index 3 is out of bounds for dimension 0 with size 3"),
        (-4, "index -4 is out of bounds for dimension 0 with size 3"),
        ((0, 4), "index 4 is out of bounds for dimension 1 with size 4"),
        ((Ellipsis, 5), "index 5 is out of bounds for dimension 2 with size 5"),
        ((None, 0, 7), "index 7 is out of bounds for dimension 1 with size 4"),
        ((0, 0, 0, 0), r"too many indices for a tensor of shape \(3, 4, 5\)"),
        (lambda: ember.tensor([0, 3]), "index 3 is out of bounds for dimension 0 with size 3"),
        (lambda: (0, ember.tensor([[1], [-5]])), "index -5 is out of bounds for dimension 1 with size 4"),
        (
            lambda: ember.tensor([True, False]),
            r"mask of shape \(2,\) does not match the indexed shape \(3,\)",
        ),
        (lambda: ember.tensor([1.0]), "tensors used as indices must be integer or bool, got ember.float32"),
        ("a", "unsupported index 'a'"),
    ],
)
def test_index_errors_name_the_index(key, msg):
    x = ember.ones(3, 4, 5)
    k = key() if callable(key) else key
    with pytest.raises(ember.IndexingError, match=msg):
        x[k]
    with pytest.raises(ember.IndexingError, match=msg):
        x[k] = 0.0


def test_setitem_shape_mismatch():
    with pytest.raises(ember.ShapeError, match=r"setitem: cannot assign a value of shape \(3,\) to"):
        ember.ones(2, 4)[0] = ember.ones(3)


@pytest.mark.parametrize(
    "call,err,msg",
    [
        (lambda x: x.gather(1, ember.tensor([[-1]])), ember.IndexingError, r"expected 0 <= index < 4"),
        (lambda x: x.index_select(1, ember.tensor([-1])), ember.IndexingError, r"expected 0 <= index < 4"),
        (
            lambda x: x.gather(1, ember.tensor([[4]])),
            ember.IndexingError,
            "gather: index out of range for dimension 1 with size 4",
        ),
        (lambda x: x.gather(1, ember.tensor([0])), ember.ShapeError, "gather: index has 1 dims, expected 2"),
        (
            lambda x: x.gather(1, ember.tensor([[0.0]])),
            ember.DTypeError,
            "gather: index must be an integer tensor",
        ),
        (lambda x: x.gather(2, ember.tensor([[0]])), ember.IndexingError, "gather: dimension 2 out of range"),
        (
            lambda x: x.gather(1, ember.zeros(4, 1, dtype=ember.int64)),
            ember.ShapeError,
            r"gather: index shape \(4, 1\) is larger than the input shape \(3, 4\) outside dimension 1",
        ),
        (
            lambda x: x.scatter(0, ember.tensor([[3]]), 1.0),
            ember.IndexingError,
            "scatter: index out of range for dimension 0 with size 3",
        ),
        (
            lambda x: x.scatter_add(1, ember.tensor([[0, 1]]), ember.ones(1, 1)),
            ember.ShapeError,
            r"scatter_add: index shape \(1, 2\) is larger than the src shape \(1, 1\)",
        ),
        (
            lambda x: x.index_select(0, ember.tensor([5])),
            ember.IndexingError,
            "index_select: index out of range for dimension 0 of size 3",
        ),
        (
            lambda x: x.index_select(0, ember.tensor([[0]])),
            ember.IndexingError,
            "index_select: index must be a 1-D",
        ),
        (
            lambda x: x.masked_fill(ember.ones(4), 0.0),
            ember.DTypeError,
            "masked_fill: mask must be a bool tensor",
        ),
        (
            lambda x: x.masked_fill(ember.ones(2, 1, 4, dtype=ember.bool), 0.0),
            ember.ShapeError,
            r"masked_fill: mask of shape \(2, 1, 4\) does not broadcast to the input's shape \(3, 4\)",
        ),
        (
            lambda x: x.masked_fill(ember.ones(5, dtype=ember.bool), 0.0),
            ember.ShapeError,
            "masked_fill: shapes",
        ),
    ],
)
def test_gather_scatter_errors(call, err, msg):
    with pytest.raises(err, match=msg):
        call(ember.ones(3, 4))


def test_masked_fill_with_a_tensor_value_gets_its_gradient():
    check_op(lambda t, x, v: x.masked_fill(x > 0, v.sum()), shapes=[(3, 4), (2,)])


def test_scatter_add_accumulates_duplicates_and_scatter_grads():
    idx = np.array([[0, 0, 2], [1, 1, 1]])
    check_op(lambda t, x, s: x.scatter_add(1, t.tensor(idx), s), shapes=[(2, 4), (2, 3)])
    check_op(lambda t, x, s: x.scatter(0, t.tensor([[0, 1, 2, 0]]), s), shapes=[(3, 4), (1, 4)])
    # src larger than index: only its leading block is used (torch's backward fails on this case)
    gradcheck(lambda x, s: x.scatter(0, ember.tensor([[0, 1, 2, 0]]), s), [rand((3, 4)), rand((2, 5))])
    gradcheck(lambda x, s: x.scatter_add(1, ember.tensor(idx), s), [rand((2, 4)), rand((2, 3))])
    gradgradcheck(
        lambda x, s: x.scatter_add(1, ember.tensor(idx), s * s) * x, [rand((2, 4)), rand((2, 3))], atol=1e-5
    )
