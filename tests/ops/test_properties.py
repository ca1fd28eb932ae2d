"""Property tests (hypothesis): broadcasting, reductions and indexing against NumPy, values and gradients."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ember

SETTINGS = settings(max_examples=30, deadline=None)


def _data(shape, seed):
    return np.random.default_rng(seed).uniform(-2, 2, size=shape)


def _t(a, grad=False):
    t = ember.tensor(a, dtype=ember.float64)
    return t.requires_grad_() if grad else t


def _unbroadcast(g, shape):
    """NumPy reference for the backward of broadcasting: sum g down to `shape`."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    return g.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True).reshape(shape)


BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "mul": (lambda a, b: a * b, np.multiply),
    "sub": (lambda a, b: a - b, np.subtract),
    "maximum": (ember.maximum, np.maximum),
    "where": (lambda a, b: ember.where(a > b, a, b * 2), lambda a, b: np.where(a > b, a, b * 2)),
}


@SETTINGS
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=3),
    op=st.sampled_from(sorted(BINARY)),
    seed=st.integers(0, 1000),
)
def test_broadcasting_binary_ops_match_numpy(shapes, op, seed):
    sa, sb = shapes.input_shapes
    a, b = _data(sa, seed), _data(sb, seed + 1)
    fn, ref = BINARY[op]
    ta, tb = _t(a, True), _t(b, True)
    out = fn(ta, tb)
    assert out.shape == shapes.result_shape
    np.testing.assert_allclose(out.detach().numpy(), ref(a, b), rtol=1e-12)
    out.sum().backward()
    # d(sum(a * b))/da is b broadcast then summed back: check the mul case exactly, shapes for all
    assert ta.grad.shape == sa and tb.grad.shape == sb
    if op == "mul":
        np.testing.assert_allclose(ta.grad.numpy(), _unbroadcast(np.broadcast_to(b, shapes.result_shape), sa))
        np.testing.assert_allclose(tb.grad.numpy(), _unbroadcast(np.broadcast_to(a, shapes.result_shape), sb))
    if op == "add":
        np.testing.assert_allclose(ta.grad.numpy(), _unbroadcast(np.ones(shapes.result_shape), sa))


@st.composite
def shape_and_dims(draw, min_side=1):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=min_side, max_side=4))
    dims = draw(
        st.lists(
            st.integers(-len(shape), len(shape) - 1),
            min_size=1,
            max_size=len(shape),
            unique_by=lambda d: d % len(shape),
        )
    )
    return shape, tuple(dims), draw(st.booleans())


REDUCE = {
    "sum": (lambda x, d, k: x.sum(d, keepdim=k), lambda a, d, k: a.sum(d, keepdims=k)),
    "mean": (lambda x, d, k: x.mean(d, keepdim=k), lambda a, d, k: a.mean(d, keepdims=k)),
    "amax": (lambda x, d, k: x.amax(d, keepdim=k), lambda a, d, k: a.max(d, keepdims=k)),
    "amin": (lambda x, d, k: x.amin(d, keepdim=k), lambda a, d, k: a.min(d, keepdims=k)),
    "prod": (lambda x, d, k: x.prod(d, keepdim=k), lambda a, d, k: a.prod(d, keepdims=k)),
    "var": (lambda x, d, k: x.var(d, keepdim=k, correction=0), lambda a, d, k: a.var(d, keepdims=k)),
    "logsumexp": (
        lambda x, d, k: x.logsumexp(d, keepdim=k),
        lambda a, d, k: np.log(np.exp(a).sum(d, keepdims=k)),
    ),
}


@SETTINGS
@given(sdk=shape_and_dims(), op=st.sampled_from(sorted(REDUCE)), seed=st.integers(0, 1000))
def test_reductions_match_numpy(sdk, op, seed):
    shape, dims, keepdim = sdk
    a = _data(shape, seed)
    fn, ref = REDUCE[op]
    x = _t(a, True)
    out = fn(x, dims, keepdim)
    want = ref(a, dims, keepdim)
    assert out.shape == np.shape(want)
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-10, atol=1e-12)
    out.sum().backward()
    assert x.grad.shape == shape
    if op == "sum":
        np.testing.assert_array_equal(x.grad.numpy(), np.ones(shape))
    if op == "mean":
        n = np.prod([shape[d] for d in dims])
        np.testing.assert_allclose(x.grad.numpy(), np.full(shape, 1 / n))


@SETTINGS
@given(sdk=shape_and_dims(min_side=0), seed=st.integers(0, 1000))
def test_sum_over_possibly_empty_dims_matches_numpy(sdk, seed):
    shape, dims, keepdim = sdk
    a = _data(shape, seed)
    np.testing.assert_allclose(_t(a).sum(dims, keepdim=keepdim).numpy(), a.sum(dims, keepdims=keepdim))


@st.composite
def array_and_basic_index(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5))
    return shape, draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))


@SETTINGS
@given(si=array_and_basic_index(), seed=st.integers(0, 1000))
def test_basic_indexing_matches_numpy_and_scatters_gradient(si, seed):
    shape, key = si
    a = _data(shape, seed)
    x = _t(a, True)
    out = x[key]
    want = a[key]
    assert out.shape == np.shape(want)
    np.testing.assert_array_equal(out.detach().numpy(), want)
    w = np.random.default_rng(seed).normal(size=np.shape(want))
    (out * _t(w)).sum().backward()
    g = np.zeros(shape)
    g[key] += w
    np.testing.assert_array_equal(x.grad.numpy(), g)


@st.composite
def array_and_integer_index(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    key = draw(
        hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=0, max_dims=2, max_side=4))
    )
    return shape, key


@SETTINGS
@given(si=array_and_integer_index(), seed=st.integers(0, 1000))
def test_integer_array_indexing_matches_numpy_and_accumulates_gradient(si, seed):
    shape, key = si
    a = _data(shape, seed)
    x = _t(a, True)
    ekey = tuple(ember.tensor(k) for k in key)
    out = x[ekey]
    np.testing.assert_array_equal(out.detach().numpy(), a[key])
    w = np.random.default_rng(seed).normal(size=a[key].shape)
    (out * _t(w)).sum().backward()
    g = np.zeros(shape)
    np.add.at(g, key, w)  # repeated indices accumulate
    np.testing.assert_allclose(x.grad.numpy(), g, rtol=1e-12)


@SETTINGS
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
    seed=st.integers(0, 1000),
    lead=st.integers(1, 3),
)
def test_bool_mask_indexing_and_assignment_match_numpy(shape, seed, lead):
    lead = min(lead, len(shape))
    a = _data(shape, seed)
    mask = np.random.default_rng(seed).uniform(size=shape[:lead]) > 0.5
    x = _t(a, True)
    out = x[ember.tensor(mask)]
    np.testing.assert_array_equal(out.detach().numpy(), a[mask])
    out.sum().backward()
    g = np.zeros(shape)
    g[mask] = 1
    np.testing.assert_array_equal(x.grad.numpy(), g)
    y, b = _t(a), a.copy()
    y[ember.tensor(mask)] = -5.0
    b[mask] = -5.0
    np.testing.assert_array_equal(y.numpy(), b)


@SETTINGS
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4),
    seed=st.integers(0, 1000),
    data=st.data(),
)
def test_permute_reshape_roundtrip_matches_numpy(shape, seed, data):
    a = _data(shape, seed)
    perm = data.draw(st.permutations(range(len(shape))))
    x = _t(a)
    np.testing.assert_array_equal(x.permute(*perm).numpy(), a.transpose(perm))
    np.testing.assert_array_equal(x.permute(*perm).reshape(-1).numpy(), a.transpose(perm).reshape(-1))
    np.testing.assert_array_equal(x.flip(tuple(perm[:1])).numpy(), np.flip(a, perm[0]))


def test_every_recorded_op_declares_the_shape_it_produces():
    # the compiler's tracer reads `op.shape`: it must agree with what the kernel returns
    x = _t(_data((2, 3, 4), 0), True)
    idx = ember.tensor([[[0, 1, 1, 0]]])
    outs = [
        x + 1.0, x * x[0], x.exp(), ember.where(x > 0, x, 0.0), x.clamp(-1, 1), ember.gelu(x), x.sum(1),
        x.mean((0, 2), keepdim=True), x.amax(-1), x.var(1), x.prod(0), x.cumsum(2), x.logsumexp(1),
        x.reshape(6, 4), x.permute(2, 0, 1), x[:, None].expand(2, 5, 3, 4), ember.cat([x, x], 1), x.flip(0),
        x.roll(1, 2), ember.pad(x, (1, 2)), x.tril(), x[0, ..., ember.tensor([1, 1])], x.gather(0, idx),
        x.scatter_add(0, idx, x[:1, :1]), x.scatter(0, idx, x[:1, :1]), x @ x.mT, x.max(1).values,
        x.mT.contiguous(), x.clone(), x.float(), x[x > 0],
    ]
    for out in outs:
        node = out.grad_fn
        assert node.op.shape(*node.inputs, **node.attrs) == out.shape, node.op.name
    from ember.ops.reduce import Argmax

    for dim, keep in ((None, False), (None, True), (1, False), (-1, True)):
        got = x.argmax(dim, keepdim=keep)
        assert Argmax.shape(x, None if dim is None else dim % 3, keep) == got.shape
