"""Fused C kernels against eager: random graphs (hypothesis), fusion counts, float64, layouts."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import ember


def _close(a, b, rtol=1e-5):
    a, b = np.asarray(a.numpy(), np.float64), np.asarray(b.numpy(), np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.abs(b).max())))


UNARY = [lambda x: x.exp().clamp(max=50.0), lambda x: x.tanh(), lambda x: x.relu(), lambda x: -x,
         lambda x: x.sigmoid(), lambda x: (x * x + 1).sqrt(), lambda x: (x.abs() + 1).log(),
         lambda x: ember.nn.functional.gelu(x, approximate="tanh"), lambda x: x.silu(),
         lambda x: x.clamp(-0.5, 0.5), lambda x: (x * x + 1).rsqrt()]
BINARY = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / (b.abs() + 1),
          lambda a, b: ember.maximum(a, b), lambda a, b: ember.where(a > b, a, b * 2)]
REDUCE = [lambda x, d: x.sum(d), lambda x, d: x.mean(d, keepdim=True), lambda x, d: x.amax(d),
          lambda x, d: x.amin(d, keepdim=True)]
MOVE = [lambda x: x.transpose(0, 1), lambda x: x.reshape(x.shape[0], -1), lambda x: x.flip(0),
        lambda x: x[1:]]


@st.composite
def programs(draw):
    """A random straight-line program over a (4, 5, 6) input and a broadcast (5, 1) input."""
    ops = []
    for _ in range(draw(st.integers(2, 7))):
        kind = draw(st.sampled_from(["u", "b", "b", "r", "m"]))
        if kind == "u":
            ops.append(("u", draw(st.integers(0, len(UNARY) - 1))))
        elif kind == "b":
            ops.append(("b", draw(st.integers(0, len(BINARY) - 1)), draw(st.booleans())))
        elif kind == "r":
            ops.append(("r", draw(st.integers(0, len(REDUCE) - 1)), draw(st.integers(0, 2))))
        else:
            ops.append(("m", draw(st.integers(0, len(MOVE) - 1))))
    return ops


def _run(ops, x, y):
    cur, outs = x, []
    for op in ops:
        if op[0] == "u":
            cur = UNARY[op[1]](cur)
        elif op[0] == "b":
            other = y if op[2] and cur.shape[-2:] == (5, 6) else cur * 0.5
            cur = BINARY[op[1]](cur, other)
        elif op[0] == "r" and cur.ndim > 1:
            outs.append(cur)
            cur = REDUCE[op[1]](cur, op[2] % cur.ndim)
        elif op[0] == "m" and cur.ndim > 1 and cur.shape[0] > 1:
            cur = MOVE[op[1]](cur)
    return tuple(outs) + (cur,)


@settings(max_examples=12, deadline=None)
@given(programs(), st.sampled_from(["float32", "float64"]))
def test_random_graphs_of_elementwise_reduction_and_movement_ops_match_eager(ops, dtype):
    x = ember.randn(4, 5, 6, dtype=dtype)
    y = ember.randn(5, 1, dtype=dtype)
    cf = ember.compile(lambda a, b: _run(ops, a, b))
    cf(x, y)  # trace + build
    x2, y2 = ember.randn(4, 5, 6, dtype=dtype), ember.randn(5, 1, dtype=dtype)
    for got, want in zip(cf(x2, y2), _run(ops, x2, y2)):
        _close(got, want, 1e-5 if dtype == "float32" else 1e-12)


def test_softmax_chain_fuses_into_few_kernels():
    def f(x):
        e = (x - x.amax(1, keepdim=True)).exp()
        return e / e.sum(1, keepdim=True)

    cf = ember.compile(f)
    x = ember.randn(32, 100)
    cf(x)
    _close(cf(x), f(x))
    steps = list(cf.entries.values())[0].report["steps"]
    assert steps["kernels"] == 3 and steps["library_ops"] == 0  # amax | sub-exp-sum | div (needs the sum)


def test_elementwise_chain_is_one_kernel_with_broadcast_operands():
    b = ember.randn(10)
    f = lambda x: ((x * 2 + b).tanh() - 1) * x  # noqa: E731
    cf = ember.compile(f)
    x = ember.randn(64, 10)
    cf(x)
    _close(cf(x), f(x))
    rep = list(cf.entries.values())[0].report
    assert rep["steps"]["kernels"] == 1 and rep["eager_dispatches"] == 5


def test_reduction_epilogue_fuses_mean_scaling_and_layer_norm_style_chains():
    def f(x, w):
        mu = x.mean(-1, keepdim=True)  # sum -> mul(1/n) in one kernel
        var = ((x - mu) * (x - mu)).mean(-1)  # prologue, sum, epilogue
        return (var + 1e-5).rsqrt() * w

    cf = ember.compile(f)
    x, w = ember.randn(16, 40), ember.randn(16)
    cf(x, w)
    for got, want in zip([cf(x, w)], [f(x, w)]):
        _close(got, want)
    rep = list(cf.entries.values())[0].report
    assert rep["steps"]["kernels"] == 2
    assert any(k.epilogue for k in rep["kernels"].values())


def test_column_reduction_of_a_bias_gradient():
    f = lambda g: (g * 3).sum((0, 1))  # noqa: E731
    cf = ember.compile(f)
    g = ember.randn(4, 7, 33)
    cf(g)
    _close(cf(g), f(g))
    k = list(list(cf.entries.values())[0].report["kernels"].values())[0]
    assert k.column


def test_noncontiguous_input_layout_is_honoured():
    f = lambda x: (x + 1).exp()  # noqa: E731
    cf = ember.compile(f)
    xt = ember.randn(6, 5).t()  # a transposed view: strides are part of the signature
    cf(xt)
    _close(cf(xt), f(xt))
    x = ember.randn(5, 6)
    _close(cf(x), f(x))
    assert cf.traces == 2


def test_matmul_runs_through_the_registry_kernel_with_fused_epilogue():
    w, b = ember.randn(8, 16), ember.randn(16)
    f = lambda x: (x @ w + b).relu()  # noqa: E731
    cf = ember.compile(f)
    x = ember.randn(4, 8)
    cf(x)
    _close(cf(x), f(x))
    steps = list(cf.entries.values())[0].report["steps"]
    assert (steps["kernels"], steps["library_ops"], steps["optimizer_steps"]) == (1, 1, 0)


def test_results_of_one_call_survive_the_next_call():
    """Kernels write internal values into buffers reused across calls; results must not be."""
    f = lambda x: ((x * 2).exp().sum(1), (x + 1).reshape(-1))  # noqa: E731
    cf = ember.compile(f)
    x1, x2 = ember.randn(8, 5), ember.randn(8, 5)
    cf(x1)
    r1 = cf(x1)
    cf(x2)
    for got, want in zip(r1, f(x1)):
        _close(got, want)


def test_reductions_that_also_store_their_prologue_values():
    def f(x):
        y = (x * 2).tanh()
        return y, y.sum(0), (y + 1).sum(1)  # a column and a row reduction; y itself is a result

    cf = ember.compile(f)
    x = ember.randn(5, 3)
    cf(x)
    for got, want in zip(cf(x), f(x)):
        _close(got, want)


def test_elementwise_on_a_permuted_input_keeps_its_layout():
    f = lambda x: (x.permute(0, 2, 1) + 1).relu()  # noqa: E731
    cf = ember.compile(f)
    x = ember.randn(4, 6, 5)
    cf(x)
    out = cf(x)
    _close(out, f(x))
    assert out._data.strides == f(x)._data.strides  # as NumPy: the output follows the input's layout


def test_kernel_outputs_with_disjoint_lifetimes_share_buffers():
    w = ember.randn(16, 16) * 0.3

    def f(x):
        for _ in range(4):  # each (.. * 2).tanh() lives only until the next matmul reads it
            x = (x * 2).tanh() @ w
        return x.sum()

    cf = ember.compile(f)
    x = ember.randn(32, 16)
    cf(x)
    _close(cf(x), f(x))
    _close(cf(x * 2), f(x * 2))
    plan = list(cf.entries.values())[0].plan
    assert plan.persistent_bytes == 32 * 16 * 4  # four intermediates, one buffer


def test_gelu_backward_kernel_matches_eager():
    lin = ember.nn.Linear(6, 40)

    def step(x):
        ember.nn.functional.gelu(lin(x), approximate="tanh").square().sum().backward()
        g = lin.weight.grad
        lin.zero_grad()
        return g

    cf = ember.compile(step)
    x = ember.randn(30, 6)
    cf(x)
    got = cf(x)
    assert "gelu_backward" in " ".join(n for _, names in list(cf.entries.values())[0].report["groups"]
                                       for n in names)
    _close(got, step(x))
