"""Gradient clipping against torch.nn.utils: returned total norm and clipped gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ember
from ember.nn.utils import clip_grad_norm_, clip_grad_value_, get_total_norm

SHAPES = [(5, 4), (4,), (3, 2, 2)]


def _pair(scale=1.0, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    grads = [rng.normal(size=s) * scale for s in SHAPES]
    ours, theirs = [], []
    for g in grads:
        p = ember.zeros(*g.shape, dtype=dtype, requires_grad=True)
        p.grad = ember.tensor(g).to(dtype)
        ours.append(p)
        q = torch.zeros(*g.shape, dtype=getattr(torch, dtype), requires_grad=True)
        q.grad = torch.tensor(g, dtype=getattr(torch, dtype))
        theirs.append(q)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, math.inf, -math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])  # clipped, and left alone
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, theirs = _pair()
    a = clip_grad_norm_(ours, max_norm, norm_type)
    b = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(a, ember.Tensor) and a.shape == ()
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-5)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clip_grad_norm_float64_is_tight_and_clips_to_max_norm():
    ours, theirs = _pair(dtype="float64")
    a = clip_grad_norm_(iter(ours), 0.7)  # a generator works too
    b = torch.nn.utils.clip_grad_norm_(theirs, 0.7)
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-12)
    after = math.sqrt(sum(float((p.grad.numpy() ** 2).sum()) for p in ours))
    assert after == pytest.approx(0.7 / (1 + 1e-6 / a.item()), rel=1e-9)


def test_single_tensor_and_missing_grads():
    p = ember.tensor([3.0, 4.0], requires_grad=True)
    q = ember.zeros(2, requires_grad=True)  # no grad: ignored
    p.grad = ember.tensor([3.0, 4.0])
    total = clip_grad_norm_([p, q], 1.0)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8], rtol=1e-5)
    assert clip_grad_norm_(q, 1.0).item() == 0.0


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NumPy on the NaN gradient
def test_error_if_nonfinite():
    ours, _ = _pair()
    ours[1].grad = ember.tensor([1.0, float("nan"), 0.0, 2.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    ours[1].grad = ember.tensor([1.0, float("inf"), 0.0, 2.0])
    total = clip_grad_norm_(ours, 1.0, norm_type=math.inf)  # no error unless asked
    assert math.isinf(total.item())


def test_clip_grad_value_matches_torch():
    ours, theirs = _pair(scale=3.0)
    clip_grad_value_(ours, 1.5)
    torch.nn.utils.clip_grad_value_(theirs, 1.5)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    assert max(float(np.abs(p.grad.numpy()).max()) for p in ours) == 1.5


def test_low_precision_grads_do_not_overflow_the_norm():
    p = ember.zeros(1000, dtype="float16", requires_grad=True)
    p.grad = ember.full((1000,), 300.0, dtype="float16")  # sum of squares 9e7 > float16 max
    total = get_total_norm([p.grad])
    assert total.item() == pytest.approx(300.0 * math.sqrt(1000), rel=1e-3)
    clip_grad_norm_([p], 1.0)
    assert p.grad.dtype is ember.float16
    np.testing.assert_allclose(p.grad.numpy().astype(np.float64), 1 / math.sqrt(1000), rtol=2e-3)


def test_clipping_does_not_record_history():
    w = ember.randn(3, requires_grad=True)
    (w * w).sum().backward(create_graph=True)
    assert w.grad.requires_grad
    clip_grad_norm_([w], 0.1)
    clip_grad_value_([w], 0.01)
    assert float(np.abs(w.grad.detach().numpy()).max()) <= 0.01 + 1e-7
