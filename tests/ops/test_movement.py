"""Movement ops: PyTorch parity forward and backward, float64 gradient checks, views and errors."""

import numpy as np
import pytest
import torch
from helpers import check_op, gradcheck, gradgradcheck

import ember


def rand(shape, low=-2.0, high=2.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def F(t):
    return t.nn.functional if t is torch else t


def _idx(t, data):
    return t.tensor(data)


# (name, fn(lib, x), input shape)
MOVEMENT = [
    ("reshape", lambda t, x: x.reshape(4, 6), (2, 3, 4)),
    ("reshape_infer", lambda t, x: x.reshape(-1, 3), (2, 3, 4)),
    ("reshape_tuple", lambda t, x: x.reshape((6, -1)), (2, 3, 4)),
    ("reshape_0dim", lambda t, x: x.reshape(()), (1, 1)),
    ("reshape_empty", lambda t, x: x.reshape(3, 0, 2), (0, 6)),
    ("view", lambda t, x: x.view(3, 8), (2, 3, 4)),
    ("view_as", lambda t, x: x.view_as(x.sum(0)), (1, 3, 4)),
    ("permute", lambda t, x: x.permute(2, 0, 1), (2, 3, 4)),
    ("permute_neg", lambda t, x: x.permute(-1, -3, -2), (2, 3, 4)),
    ("transpose", lambda t, x: x.transpose(0, 2), (2, 3, 4)),
    ("transpose_neg", lambda t, x: x.transpose(-1, 0), (2, 3, 4)),
    ("T", lambda t, x: x.T, (3, 4)),
    ("t", lambda t, x: x.t(), (3, 4)),
    ("t_1d", lambda t, x: x.t(), (3,)),
    ("mT", lambda t, x: x.mT, (2, 3, 4)),
    ("expand", lambda t, x: x.expand(2, 3, 4), (3, 1)),
    ("expand_keep", lambda t, x: x.expand(5, -1, 4), (3, 1)),
    ("broadcast_to", lambda t, x: t.broadcast_to(x, (2, 3, 4)), (1, 4)),
    ("expand_as", lambda t, x: x.expand_as(t.ones(2, 3, 4)), (3, 1)),
    ("squeeze", lambda t, x: x.squeeze(), (1, 3, 1, 4)),
    ("squeeze_dim", lambda t, x: x.squeeze(2), (1, 3, 1, 4)),
    ("squeeze_dims", lambda t, x: x.squeeze((0, 2)), (1, 3, 1, 4)),
    ("squeeze_noop", lambda t, x: x.squeeze(1), (1, 3, 1, 4)),
    ("unsqueeze", lambda t, x: x.unsqueeze(1), (3, 4)),
    ("unsqueeze_neg", lambda t, x: x.unsqueeze(-1), (3, 4)),
    ("flatten", lambda t, x: x.flatten(), (2, 3, 4)),
    ("flatten_range", lambda t, x: x.flatten(1, 2), (2, 3, 4, 1)),
    ("flatten_0dim", lambda t, x: x.flatten(), ()),
    ("unflatten", lambda t, x: x.unflatten(1, (2, -1)), (2, 6, 4)),
    ("contiguous", lambda t, x: x.mT.contiguous(), (3, 4)),
    ("clone", lambda t, x: x.clone(), (3, 4)),
    ("flip", lambda t, x: x.flip(0), (3, 4)),
    ("flip_dims", lambda t, x: x.flip((0, -1)), (2, 3, 4)),
    ("roll", lambda t, x: x.roll(1, 0), (3, 4)),
    ("roll_dims", lambda t, x: x.roll((2, -1), (1, 0)), (3, 4)),
    ("roll_flat", lambda t, x: x.roll(5), (3, 4)),
    ("repeat", lambda t, x: x.repeat(2, 3), (3, 4)),
    ("repeat_new_dims", lambda t, x: x.repeat(2, 1, 2), (3, 4)),
    ("tril", lambda t, x: x.tril(), (4, 4)),
    ("tril_k", lambda t, x: x.tril(-1), (2, 3, 4)),
    ("triu", lambda t, x: x.triu(), (3, 5)),
    ("triu_k", lambda t, x: x.triu(2), (2, 4, 4)),
    ("movedim", lambda t, x: x.movedim(0, -1), (2, 3, 4)),
    ("narrow", lambda t, x: x.narrow(1, 1, 2), (2, 3, 4)),
    ("pad_constant", lambda t, x: F(t).pad(x, (1, 2)), (2, 3)),
    ("pad_constant_2d", lambda t, x: F(t).pad(x, (1, 0, 2, 1), value=3.5), (2, 3, 4)),
    ("pad_negative", lambda t, x: F(t).pad(x, (-1, 2, 1, -1)), (3, 4)),
    ("pad_reflect", lambda t, x: F(t).pad(x, (2, 1), mode="reflect"), (2, 3, 4)),
    ("pad_reflect_2d", lambda t, x: F(t).pad(x, (1, 2, 2, 1), mode="reflect"), (1, 2, 3, 4)),
    ("pad_replicate", lambda t, x: F(t).pad(x, (3, 1), mode="replicate"), (2, 3, 4)),
    ("pad_replicate_2d", lambda t, x: F(t).pad(x, (1, 2, 2, 1), mode="replicate"), (1, 2, 3, 4)),
    ("pad_circular", lambda t, x: F(t).pad(x, (2, 1), mode="circular"), (2, 3, 4)),
    ("index_select", lambda t, x: x.index_select(1, _idx(t, [2, 0, 2])), (3, 4)),
    ("index_select_0", lambda t, x: x.index_select(0, _idx(t, [1])), (3, 4)),
    ("gather", lambda t, x: x.gather(1, _idx(t, [[0, 0, 3], [1, 2, 1], [3, 3, 3]])), (3, 4)),
    ("gather_0", lambda t, x: x.gather(0, _idx(t, [[0, 2, 1, 0]])), (3, 4)),
    ("take_along_dim", lambda t, x: t.take_along_dim(x, _idx(t, [[0], [3], [1]]), 1), (3, 4)),
    ("scatter", lambda t, x: x.scatter(1, _idx(t, [[0, 2], [3, 1], [1, 0]]), x[:, :2] * 2), (3, 4)),
    ("scatter_value", lambda t, x: x.scatter(0, _idx(t, [[0, 2, 1, 0]]), 1.5), (3, 4)),
    (
        "scatter_add",
        lambda t, x: x.scatter_add(1, _idx(t, [[0, 0], [3, 1], [1, 1]]), x[:, 1:3].exp()),
        (3, 4),
    ),
    ("masked_fill", lambda t, x: x.masked_fill(x > 0.5, -1.0), (3, 4)),
    ("masked_fill_bcast", lambda t, x: x.masked_fill(_idx(t, [True, False, False, True]), 2.0), (3, 4)),
    ("split", lambda t, x: x.split(2, 1), (3, 5)),
    ("split_sizes", lambda t, x: x.split([1, 3, 1], 1), (3, 5)),
    ("chunk", lambda t, x: x.chunk(3, 0), (7, 2)),
    ("chunk_uneven", lambda t, x: x.chunk(4, 1), (2, 6)),
    ("unbind", lambda t, x: x.unbind(1), (2, 3, 4)),
    ("unbind_0", lambda t, x: t.unbind(x), (2, 3)),
]
IDS = [m[0] for m in MOVEMENT]


@pytest.mark.parametrize("name,fn,shape", MOVEMENT, ids=IDS)
def test_movement_matches_torch(name, fn, shape):
    check_op(fn, shapes=[shape])


# torch's view refuses non-contiguous inputs (ember's copies)
@pytest.mark.parametrize(
    "name,fn,shape", [m for m in MOVEMENT if m[0] != "view"], ids=[i for i in IDS if i != "view"]
)
def test_movement_matches_torch_on_noncontiguous_input(name, fn, shape):
    check_op(fn, shapes=[shape], noncontiguous=True)


@pytest.mark.parametrize("name,fn,shape", MOVEMENT, ids=IDS)
def test_movement_gradcheck(name, fn, shape):
    gradcheck(lambda x: fn(ember, x), [rand(shape)])


@pytest.mark.parametrize(
    "name,fn,shape", [m for m in MOVEMENT if len(m[2]) >= 2], ids=[m[0] for m in MOVEMENT if len(m[2]) >= 2]
)
def test_movement_gradcheck_noncontiguous(name, fn, shape):
    # the op sees a transposed view of a (..., b, a) buffer
    gradcheck(lambda x: fn(ember, x.mT), [rand(shape[:-2] + shape[-2:][::-1], seed=3)])


@pytest.mark.parametrize(
    "name,fn,shape", [m for m in MOVEMENT if len(m[2]) >= 2], ids=[m[0] for m in MOVEMENT if len(m[2]) >= 2]
)
def test_movement_gradgradcheck(name, fn, shape):
    # multiply by the input so the first gradient depends on it
    gradgradcheck(lambda x: [o * o for o in _outs(fn(ember, x))], [rand(shape, seed=5)], atol=1e-5)


def _outs(o):
    return list(o) if isinstance(o, (tuple, list)) else [o]


# (name, fn(lib, *xs), shapes)
MULTI = [
    ("cat", lambda t, a, b: t.cat([a, b]), [(2, 3), (4, 3)]),
    ("cat_dim1", lambda t, a, b: t.cat([a, b, a], dim=1), [(2, 3), (2, 1)]),
    ("cat_neg", lambda t, a, b: t.cat((a, b), -1), [(2, 3, 1), (2, 3, 2)]),
    ("cat_empty", lambda t, a, b: t.cat([a, b], 0), [(0, 3), (2, 3)]),
    ("cat_legacy_empty", lambda t, a, b: t.cat([a, b], 1), [(0,), (2, 3)]),
    ("stack", lambda t, a, b: t.stack([a, b]), [(2, 3), (2, 3)]),
    ("stack_last", lambda t, a, b: t.stack([a, b, a], dim=-1), [(2, 3), (2, 3)]),
    ("stack_mid", lambda t, a, b: t.stack((a, b), 1), [(2, 3), (2, 3)]),
    ("where_bcast", lambda t, a, b: t.where(a > 0, a, b), [(2, 1, 3), (4, 1)]),
]


@pytest.mark.parametrize("name,fn,shapes", MULTI, ids=[m[0] for m in MULTI])
def test_join_ops_match_torch(name, fn, shapes):
    check_op(fn, shapes=shapes)
    gradcheck(lambda *xs: fn(ember, *xs), [rand(s, seed=i) for i, s in enumerate(shapes)])


def test_cat_promotes_dtypes():
    for da, db in (("int64", "float16"), ("bool", "int32"), ("float16", "bfloat16"), ("int8", "uint8")):
        e = ember.cat([ember.ones(2, dtype=getattr(ember, da)), ember.ones(3, dtype=getattr(ember, db))])
        r = torch.cat([torch.ones(2, dtype=getattr(torch, da)), torch.ones(3, dtype=getattr(torch, db))])
        assert e.dtype.name == str(r.dtype).split(".")[1]


def test_reshape_transpose_and_slices_are_views():
    x = ember.arange(12.0).reshape(3, 4)
    for v in (
        x.reshape(4, 3),
        x.T,
        x.permute(1, 0),
        x[1],
        x[:, 1:3],
        x.unsqueeze(0),
        x.expand(2, 3, 4),
        x.narrow(0, 1, 1),
        x.flatten(),
        x.squeeze(),
        x.split(2, 1)[1],
        x.unbind(0)[2],
    ):
        assert np.shares_memory(v._data, x._data) and v._vc is x._vc


def test_inplace_through_a_view_is_seen_by_the_base():
    x = ember.zeros(3, 4)
    x[1].fill_(2.0)
    x.T[0].add_(1.0)
    x.reshape(12)[11].fill_(5.0)
    want = np.zeros((3, 4))
    want[1] = 2
    want[:, 0] += 1
    want[2, 3] = 5
    np.testing.assert_array_equal(x.numpy(), want)


def test_contiguous_and_clone_copy():
    x = ember.arange(6.0).reshape(2, 3)
    assert x.contiguous() is x
    y = x.T.contiguous()
    assert y.is_contiguous() and not np.shares_memory(y._data, x._data)
    c = x.clone()
    c.fill_(0.0)
    assert x.sum().item() == 15.0


def test_pad_of_integer_tensor_and_zero_pad():
    x = ember.tensor([[1, 2], [3, 4]])
    assert ember.pad(x, (1, 1), value=9).tolist() == [[9, 1, 2, 9], [9, 3, 4, 9]]
    check_op(lambda t, v: F(t).pad(v, (0, 0, 0, 0)), shapes=[(2, 3)])


def test_expand_of_zero_size_and_repeat_zero():
    check_op(lambda t, x: x.expand(0, 3), shapes=[(1, 3)])
    check_op(lambda t, x: x.repeat(0, 2), shapes=[(2, 3)])
    check_op(lambda t, x: x.split(2, 0), shapes=[(0, 3)])


@pytest.mark.parametrize(
    "call,err,msg",
    [
        (
            lambda x: x.reshape(5, 5),
            ember.ShapeError,
            r"reshape: shape \(5, 5\) is invalid for input of size 24",
        ),
        (lambda x: x.reshape(-1, -1), ember.ShapeError, "reshape: only one dimension can be -1"),
        (lambda x: x.view(7, -1), ember.ShapeError, r"view: shape \(7, -1\) is invalid for input of size 24"),
        (lambda x: x.permute(0, 1), ember.ShapeError, r"permute: dims \(0, 1\) are not a permutation"),
        (lambda x: x.permute(0, 1, 1), ember.ShapeError, r"permute: dims \(0, 1, 1\) are not a permutation"),
        (lambda x: x.transpose(0, 3), ember.IndexingError, "transpose: dimension 3 out of range"),
        (
            lambda x: x.expand(2, 5, 4),
            ember.ShapeError,
            r"expand: the size 3 of dimension 1 of \(2, 3, 4\) must match",
        ),
        (lambda x: x.expand(3, 4), ember.ShapeError, "expand: target"),
        (lambda x: x.squeeze(3), ember.IndexingError, "squeeze: dimension 3 out of range"),
        (lambda x: x.unsqueeze(4), ember.IndexingError, "unsqueeze: dimension 4 out of range"),
        (lambda x: x.flatten(0, 5), ember.IndexingError, "flatten: dimension 5 out of range"),
        (
            lambda x: x.unflatten(1, (2, 2)),
            ember.ShapeError,
            r"unflatten: shape \(2, 2\) is invalid for input of size 3",
        ),
        (
            lambda x: ember.cat([x, ember.ones(2, 4, 4)]),
            ember.ShapeError,
            r"cat: tensor 1 has shape \(2, 4, 4\), which does not match \(2, 3, 4\) outside dimension 0",
        ),
        (lambda x: ember.cat([x, ember.ones(2, 3)]), ember.ShapeError, "cat: tensor 1 has shape"),
        (lambda x: ember.cat([]), ember.ShapeError, "cat: expected a non-empty list"),
        (lambda x: ember.cat([x], 3), ember.IndexingError, "cat: dimension 3 out of range"),
        (lambda x: ember.stack([x, x[0]]), ember.ShapeError, r"stack: tensor 1 has shape \(3, 4\), expected"),
        (
            lambda x: x.split([1, 1], 1),
            ember.ShapeError,
            r"split: sections \[1, 1\] sum to 2, but dimension 1 has "
            "size 3",
        ),
        (lambda x: x.t(), ember.ShapeError, r"t: expects a tensor with <= 2 dims"),
        (lambda x: x[0, 0].tril(), ember.ShapeError, "tril: needs at least 2 dims"),
        (lambda x: ember.pad(x, (1,)), ember.ShapeError, "pad: expected an even number of paddings"),
        (
            lambda x: ember.pad(x, (4, 0), mode="reflect"),
            ember.ShapeError,
            r"pad: reflect padding \(4, 0\) must be "
            "smaller than the dimension size 4",
        ),
        (lambda x: ember.pad(x, (1, 0), mode="wrap"), ValueError, "pad: mode must be"),
        (lambda x: x.roll(1, 3), ember.IndexingError, "roll: dimension 3 out of range"),
        (lambda x: x.flip(3), ember.IndexingError, "flip: dimension 3 out of range"),
        (lambda x: x.repeat(2), ember.ShapeError, "repeat: got 1 repeat counts for a tensor with 3 dims"),
        (lambda x: x.movedim(0, 3), ember.IndexingError, "movedim: dimension 3 out of range"),
        (lambda x: x.chunk(0), ValueError, "chunk: chunks must be positive, got 0"),
        (lambda x: x.split(0), ValueError, "split: split_size must be positive, got 0"),
        (
            lambda x: x.narrow(1, 2, 2),
            ember.IndexingError,
            r"narrow: start 2 \+ length 2 exceeds dimension 1 of size 3",
        ),
    ],
)
def test_movement_errors(call, err, msg):
    with pytest.raises(err, match=msg):
        call(ember.ones(2, 3, 4))


def test_flip_returns_a_copy_like_torch():
    x = ember.arange(4.0)
    y = x.flip(0)
    y.add_(10.0)
    assert x.tolist() == [0.0, 1.0, 2.0, 3.0] and y.tolist() == [13.0, 12.0, 11.0, 10.0]
