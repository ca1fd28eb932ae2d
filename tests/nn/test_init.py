"""nn.init: statistics of every initialiser on large tensors, fan computation and gains against torch,
orthogonality, reproducibility through ember.random generators."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

import ember
import ember.nn as nn
from ember.nn import init


def _param(*shape):
    return nn.Parameter(ember.zeros(*shape))


def _np(t):
    return t.detach().numpy().astype(np.float64)


def test_uniform_and_normal_statistics():
    w = _np(init.uniform_(_param(400, 500), -0.3, 0.7))
    assert w.min() >= -0.3 and w.max() < 0.7
    assert abs(w.mean() - 0.2) < 0.005 and abs(w.std() - 1.0 / math.sqrt(12)) < 0.005
    w = _np(init.normal_(_param(400, 500), 1.5, 0.2))
    assert abs(w.mean() - 1.5) < 0.002 and abs(w.std() - 0.2) < 0.002


def test_trunc_normal_stays_in_bounds_with_truncated_moments():
    w = _np(init.trunc_normal_(_param(500, 400), mean=0.5, std=1.0, a=-0.5, b=1.5))
    assert w.min() >= -0.5 and w.max() <= 1.5
    ref = stats.truncnorm(-1.0, 1.0, loc=0.5, scale=1.0)
    assert abs(w.mean() - ref.mean()) < 0.005 and abs(w.std() - ref.std()) < 0.005
    assert len(np.unique(w)) > 0.99 * w.size  # redrawn, not clamped onto the bounds
    w = _np(init.trunc_normal_(_param(300, 300), std=0.02))  # torch's default bounds barely bite here
    assert abs(w.std() - 0.02) < 0.0005


def test_constant_zeros_ones_eye():
    assert np.all(_np(init.constant_(_param(3, 4), 2.5)) == 2.5)
    assert not np.any(_np(init.zeros_(_param(3, 4))))
    assert np.all(_np(init.ones_(_param(3, 4))) == 1)
    np.testing.assert_array_equal(_np(init.eye_(_param(3, 4))), np.eye(3, 4))


@pytest.mark.parametrize("shape", [(30, 20), (8, 4, 3, 3), (5, 6, 7)])
def test_fan_in_and_fan_out_match_torch(shape):
    assert init._calculate_fan_in_and_fan_out(ember.zeros(*shape)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))


def test_fan_needs_two_dims():
    with pytest.raises(ember.ShapeError, match="fewer than 2"):
        init.xavier_uniform_(_param(5))


def test_calculate_gain_matches_torch():
    for nl, p in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                  ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert init.calculate_gain(nl, p) == pytest.approx(torch.nn.init.calculate_gain(nl, p))
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")


def test_xavier_bounds_and_std():
    fan_in, fan_out = 3 * 9, 64 * 9
    w = _np(init.xavier_uniform_(_param(64, 3, 3, 3), gain=2.0))
    bound = 2.0 * math.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.03 * bound
    w = _np(init.xavier_normal_(_param(300, 500)))
    assert abs(w.std() - math.sqrt(2.0 / 800)) < 0.001


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0.0), ("leaky_relu", math.sqrt(5)), ("tanh", 0.0)])
def test_kaiming_bounds_and_std(mode, nonlinearity, a):
    shape = (200, 50, 3, 3)
    fan = 50 * 9 if mode == "fan_in" else 200 * 9
    gain = torch.nn.init.calculate_gain(nonlinearity, a)
    w = _np(init.kaiming_uniform_(_param(*shape), a=a, mode=mode, nonlinearity=nonlinearity))
    bound = gain * math.sqrt(3.0 / fan)
    assert np.abs(w).max() <= bound * (1 + 1e-6) and np.abs(w).max() > 0.99 * bound
    w = _np(init.kaiming_normal_(_param(*shape), a=a, mode=mode, nonlinearity=nonlinearity))
    assert abs(w.std() - gain / math.sqrt(fan)) < 0.01 * gain / math.sqrt(fan)
    assert abs(w.mean()) < 0.01 * gain / math.sqrt(fan)
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(_param(3, 3), mode="fan_avg")


@pytest.mark.parametrize("shape", [(40, 40), (30, 70), (70, 30), (16, 4, 3, 3)])
def test_orthogonal_gives_orthonormal_rows_or_columns(shape):
    w = _np(init.orthogonal_(_param(*shape), gain=1.0)).reshape(shape[0], -1)
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=2e-5)
    w2 = _np(init.orthogonal_(_param(20, 20), gain=3.0))
    np.testing.assert_allclose(w2.T @ w2, 9 * np.eye(20), atol=1e-4)


def test_orthogonal_is_haar_distributed():
    # the first entry of a Haar-random orthogonal n x n matrix has mean 0 and variance 1/n
    vals = [_np(init.orthogonal_(_param(8, 8)))[0, 0] for _ in range(400)]
    assert abs(np.mean(vals)) < 0.06 and abs(np.var(vals) - 1 / 8) < 0.03


def test_initialisers_are_reproducible_through_generators_and_leave_leaves():
    g1, g2 = ember.Generator(7), ember.Generator(7)
    a = _np(init.kaiming_uniform_(_param(10, 10), generator=g1))
    b = _np(init.kaiming_uniform_(_param(10, 10), generator=g2))
    np.testing.assert_array_equal(a, b)
    ember.manual_seed(3)
    c = _np(init.orthogonal_(_param(6, 6)))
    ember.manual_seed(3)
    d = _np(init.orthogonal_(_param(6, 6)))
    np.testing.assert_array_equal(c, d)
    p = _param(4, 4)
    for fn in (init.normal_, init.xavier_uniform_, init.trunc_normal_, init.orthogonal_, init.zeros_):
        fn(p)
        assert p.requires_grad and p.is_leaf and p.grad_fn is None
