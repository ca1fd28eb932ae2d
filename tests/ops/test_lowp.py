"""float16 / bfloat16: forward (and backward) parity with PyTorch on a representative set of ops.

ember computes low-precision ops in float32 and rounds once, as PyTorch does on cpu, so
results agree to the tolerances in helpers.TOL.
"""

import numpy as np
import pytest
import torch
from helpers import check_op

import ember


def F(t):
    return t.nn.functional if t is torch else t


# (name, fn, shapes, positive inputs)
OPS = [
    ("add", lambda t, a, b: a + b, [(3, 4), (4,)], False),
    ("mul", lambda t, a, b: a * b, [(3, 4), (3, 1)], False),
    ("div", lambda t, a, b: a / b, [(3, 4), (4,)], True),
    ("pow", lambda t, a, b: a**b, [(3, 4), (4,)], True),
    ("scalar", lambda t, a: a * 0.5 + 3, [(3, 4)], False),
    ("exp", lambda t, a: a.exp(), [(3, 4)], False),
    ("log", lambda t, a: a.log(), [(3, 4)], True),
    ("sqrt", lambda t, a: a.sqrt(), [(3, 4)], True),
    ("rsqrt", lambda t, a: a.rsqrt(), [(3, 4)], True),
    ("tanh", lambda t, a: a.tanh(), [(3, 4)], False),
    ("sigmoid", lambda t, a: a.sigmoid(), [(3, 4)], False),
    ("relu", lambda t, a: a.relu(), [(3, 4)], False),
    ("gelu", lambda t, a: F(t).gelu(a), [(3, 4)], False),
    ("gelu_tanh", lambda t, a: F(t).gelu(a, approximate="tanh"), [(3, 4)], False),
    ("silu", lambda t, a: F(t).silu(a), [(3, 4)], False),
    ("softplus", lambda t, a: F(t).softplus(a), [(3, 4)], False),
    ("clamp", lambda t, a: a.clamp(-0.5, 0.5), [(3, 4)], False),
    ("where", lambda t, a, b: t.where(a > 0, a, b), [(3, 4), (4,)], False),
    ("sum", lambda t, a: a.sum(1), [(3, 40)], False),
    ("mean", lambda t, a: a.mean(0), [(30, 4)], False),
    ("amax", lambda t, a: a.amax(1), [(3, 4)], False),
    ("var", lambda t, a: a.var(1), [(3, 20)], False),
    ("logsumexp", lambda t, a: a.logsumexp(1), [(3, 4)], False),
    ("cumsum", lambda t, a: a.cumsum(1), [(3, 8)], False),
    ("matmul", lambda t, a, b: a @ b, [(3, 16), (16, 5)], False),
    ("bmm", lambda t, a, b: a @ b, [(2, 3, 8), (2, 8, 5)], False),
    ("getitem", lambda t, a: a[1:, t.tensor([0, 2, 2])], [(3, 4)], False),
    ("cat", lambda t, a, b: t.cat([a, b], 1), [(3, 4), (3, 2)], False),
    ("permute_reshape", lambda t, a: a.permute(1, 0).reshape(2, 6), [(3, 4)], False),
    ("pad", lambda t, a: F(t).pad(a, (1, 1), mode="reflect"), [(3, 4)], False),
]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name,fn,shapes,positive", OPS, ids=[o[0] for o in OPS])
def test_low_precision_forward_matches_torch(dtype, name, fn, shapes, positive):
    check_op(fn, shapes=shapes, dtype=dtype, positive=positive, grad=False)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "name,fn,shapes,positive",
    [o for o in OPS if o[0] in ("mul", "exp", "tanh", "gelu", "sum", "matmul", "getitem")],
    ids=["mul", "exp", "tanh", "gelu", "sum", "matmul", "getitem"],
)
def test_low_precision_backward_matches_torch(dtype, name, fn, shapes, positive):
    # gradients are rounded at every step in both libraries: allow a few ulps more than forward
    atol = {"float16": 5e-3, "bfloat16": 4e-2}[dtype]
    check_op(fn, shapes=shapes, dtype=dtype, positive=positive, atol=atol, rtol=atol)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_results_keep_their_dtype(dtype):
    d = getattr(ember, dtype)
    x = ember.ones(3, 4, dtype=d)
    for out in (
        x + x,
        x * 2.0,
        x.exp(),
        x.sum(),
        x.mean(1),
        x @ x.mT,
        x[0],
        x.sigmoid(),
        ember.gelu(x),
        x.var(1),
        x.logsumexp(1),
        x.cumsum(0),
        x.amax(0),
        x.where(x > 0, 0.0),
    ):
        assert out.dtype is d


def test_float16_overflow_and_rounding_follow_torch():
    a = np.array([60000.0, 1e-8, 1.0 + 2**-11, -70000.0])
    e = ember.tensor(a).to(ember.float16)
    r = torch.tensor(a).to(torch.float16)
    np.testing.assert_array_equal(e.to(ember.float32).numpy(), r.float().numpy())
    np.testing.assert_array_equal((e * 2).to(ember.float32).numpy(), (r * 2).float().numpy())
