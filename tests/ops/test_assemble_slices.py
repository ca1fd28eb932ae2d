"""assemble_slices: disjoint basic-key gradients written into one tensor (split/chunk's backward)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember.errors import IndexingError, ShapeError
from ember.ops.indexing import _disjoint_basic_keys, _gap_keys
from tests.helpers import check_op, gradcheck, gradgradcheck

ALL = slice(None)
CASES = [  # (shape, keys): split along the last dim, a gap, ints and Ellipsis, strided interleaving
    ((2, 3, 9), [(ALL, ALL, slice(0, 3)), (ALL, ALL, slice(3, 6)), (ALL, ALL, slice(6, 9))]),
    ((4, 5), [(slice(0, 1),), (slice(2, 4),)]),
    ((3, 4, 2), [(0,), (slice(1, 3), Ellipsis, 0), (slice(1, 2), ALL, 1)]),
    ((6, 3), [(slice(0, None, 2),), (slice(1, None, 2), slice(0, 2))]),
]


def _torch_assemble(gs, shape, keys):
    out = torch.zeros(shape, dtype=gs[0].dtype)
    for g, k in zip(gs, keys):
        out[k] = g
    return out


def _part_shapes(shape, keys):
    return [np.empty(shape)[k].shape for k in keys]


@pytest.mark.parametrize("shape,keys", CASES)
def test_assemble_slices_matches_torch(shape, keys):
    def fn(lib, *gs):
        if lib is ember:
            return ember.assemble_slices(gs, shape, keys)
        return _torch_assemble(gs, shape, keys)
    check_op(fn, _part_shapes(shape, keys))


@pytest.mark.parametrize("shape,keys", CASES[:3])
def test_assemble_slices_equals_the_sum_of_index_add_into_and_is_twice_differentiable(shape, keys):
    rng = np.random.default_rng(0)
    gs = [rng.normal(size=s) for s in _part_shapes(shape, keys)]
    want = sum(ember.index_add_into(ember.tensor(g), shape, k).numpy() for g, k in zip(gs, keys))
    got = ember.assemble_slices([ember.tensor(g) for g in gs], shape, keys).numpy()
    np.testing.assert_array_equal(got, want)
    f = lambda *ts: ember.assemble_slices(ts, shape, keys) ** 2  # noqa: E731
    gradcheck(f, gs)
    gradgradcheck(f, gs)


def test_keys_that_overlap_or_are_arrays_are_refused():
    assert _disjoint_basic_keys((4, 6), [(ALL, slice(0, 3)), (ALL, slice(3, 6))])
    assert _gap_keys((4, 6), [(ALL, slice(0, 3)), (ALL, slice(3, 6))]) == ()
    assert _gap_keys((4, 6), [(ALL, slice(0, 3)), (ALL, slice(4, 6))]) == ((slice(0, 4), slice(3, 4)),)
    assert not _disjoint_basic_keys((4, 6), [(ALL, slice(0, 4)), (ALL, slice(3, 6))])
    assert not _disjoint_basic_keys((6,), [(slice(0, None, 2),), (slice(2, 3),)])  # stride 2 meets 2
    assert not _disjoint_basic_keys((4,), [(np.array([0, 0]),), (slice(1, 2),)])
    assert not _disjoint_basic_keys((4,), [(True,), (slice(1, 2),)])
    with pytest.raises(IndexingError, match="disjoint"):
        ember.assemble_slices([ember.ones(2, 4), ember.ones(2, 4)], (4, 4), [(slice(0, 2),), (slice(1, 3),)])
    with pytest.raises(ShapeError, match="assemble_slices"):
        ember.assemble_slices([ember.ones(3, 4)], (4, 4), [(slice(0, 2),)])


@pytest.mark.parametrize("viewable", [True, False])
def test_assemble_slices_writes_other_shapes_in_row_major_order(viewable):
    rng = np.random.default_rng(1)
    if viewable:  # out[:, :, 4:8] of (2, 3, 8) seen as (2, 3, 2, 2): a view
        shape, keys, shapes = (2, 3, 8), [(ALL, ALL, slice(0, 4)), (ALL, ALL, slice(4, 8))], [(2, 3, 2, 2)] * 2
    else:  # out[:, 0:4] of (4, 6) as 16 elements: not a view, written through a reshaped copy
        shape, keys, shapes = (4, 6), [(ALL, slice(0, 4)), (ALL, slice(4, 6))], [(16,), (2, 4)]
    gs = [rng.normal(size=s) for s in shapes]
    want = np.zeros(shape)
    for g, k in zip(gs, keys):
        want[k] = g.reshape(want[k].shape)
    got = ember.assemble_slices([ember.tensor(g) for g in gs], shape, keys)
    np.testing.assert_array_equal(got.numpy(), want)
    gradcheck(lambda *ts: ember.assemble_slices(ts, shape, keys) ** 2, gs)


@st.composite
def _boxes(draw):
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    keys = []
    for _ in range(draw(st.integers(0, 4))):
        key = []
        for n in shape:
            if draw(st.booleans()):
                key.append(draw(st.integers(-n, n - 1)))
            else:
                key.append(slice(draw(st.integers(0, n)), draw(st.integers(0, n)), draw(st.integers(1, 3))))
        keys.append(tuple(key))
    return shape, keys


@settings(max_examples=60, deadline=None)
@given(_boxes())
def test_keys_and_gaps_cover_every_element_exactly_once(case):
    shape, keys = case
    hits = np.zeros(shape, int)
    for k in keys:
        hits[k] += 1
    assert _disjoint_basic_keys(shape, keys) == bool((hits <= 1).all())
    if (hits <= 1).all():
        for gap in _gap_keys(shape, keys):
            hits[gap] += 1
        assert (hits == 1).all()
        rng = np.random.default_rng(0)
        gs = [ember.tensor(rng.normal(size=np.empty(shape)[k].shape)) for k in keys]
        if gs:
            want = sum(ember.index_add_into(g, shape, k).numpy() for g, k in zip(gs, keys))
            np.testing.assert_array_equal(ember.assemble_slices(gs, shape, keys).numpy(), want)
