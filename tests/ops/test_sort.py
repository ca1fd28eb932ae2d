"""sort, argsort and topk against torch; values carry gradients to the chosen positions."""

import numpy as np
import pytest
import torch
from helpers import check_op, gradcheck, make_inputs

import ember
from ember.errors import ShapeError


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_matches_torch(dim, descending):
    check_op(lambda t, x: t.sort(x, dim=dim, descending=descending)[0], [(4, 5)])
    x = np.array([[3.0, 1.0, 3.0, 2.0, 1.0]])
    got = ember.tensor(x).sort(dim=-1, descending=descending).indices.tolist()
    want = torch.tensor(x).sort(dim=-1, descending=descending, stable=True).indices.tolist()
    assert got == want  # ties keep their order (stable)


@pytest.mark.parametrize("k,dim,largest", [(1, -1, True), (3, 1, True), (2, 0, False), (5, -1, False)])
def test_topk_values_indices_and_gradient_match_torch(k, dim, largest):
    check_op(lambda t, x: t.topk(x, k, dim=dim, largest=largest)[0], [(4, 5)])
    x = make_inputs([(4, 5)])[0]
    e = ember.tensor(x).topk(k, dim=dim, largest=largest)
    t = torch.tensor(x).topk(k, dim=dim, largest=largest)
    assert e.indices.tolist() == t.indices.tolist()


def test_topk_gradcheck_and_argsort():
    gradcheck(lambda x: x.topk(2, dim=1).values, make_inputs([(3, 4)]))
    x = make_inputs([(6,)])[0]
    assert ember.tensor(x).argsort().tolist() == np.argsort(x, kind="stable").tolist()


def test_topk_k_out_of_range_is_a_shape_error():
    with pytest.raises(ShapeError, match="topk: k=7 is out of range for dimension 1 of size 5"):
        ember.zeros(2, 5).topk(7)
