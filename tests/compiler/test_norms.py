"""layer_norm and rms_norm under ember.compile: recorded as primitives (mean, variance, rsqrt,
normalise) that fuse into reduction kernels, with the saved rstd a graph value the backward reads;
forward and gradients equal eager (rel <= 1e-5), and eager keeps its fused kernel."""

import numpy as np
import pytest

import ember
import ember.nn.functional as F


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))


NORMS = {
    "layer_norm": lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5),
    "layer_norm_2d": lambda x, w, b: F.layer_norm(x, x.shape[-2:], None, None, eps=1e-5),
    "rms_norm": lambda x, w, b: F.rms_norm(x, (x.shape[-1],), w, eps=1e-6),
}


@pytest.mark.parametrize("name", sorted(NORMS))
def test_compiled_norm_forward_and_gradients_match_eager(name):
    norm = NORMS[name]

    def step(x, w, b, g):
        y = norm(x, w, b)
        (y * g).sum().backward()  # g: an arbitrary upstream gradient
        return y.detach(), x.grad, w.grad, b.grad

    def run(fn, x, w, b, g):
        x, w, b = (t.detach().requires_grad_() for t in (x, w, b))
        return fn(x, w, b, g)

    ember.manual_seed(0)
    shape = (4, 6, 40)
    w, b = ember.randn(40) * 0.5 + 1, ember.randn(40)
    cf = ember.compile(step)
    for i in range(3):
        x, g = ember.randn(*shape) * 3 + i, ember.randn(*shape)
        for got, want in zip(run(cf, x, w, b, g), run(step, x, w, b, g)):
            if want is None:
                assert got is None
            else:
                assert _rel(got.detach().numpy(), want.detach().numpy()) <= 1e-5
    entry = list(cf.entries.values())[0]
    names = [n.name for n in entry.graph.nodes]
    assert "layer_norm" not in names and "rms_norm" not in names  # no library call
    assert entry.report["decomposed"] >= 1
    kernels = entry.report["kernels"].values()
    phases = [p for k in kernels for p in (k.phases or [k])]
    assert any(p.reduce and p.epilogue for p in phases)  # statistics: reductions with an epilogue (* 1/n, + eps, rsqrt)
    # the forward's statistics and normalised output (and the backward's row sums) are row kernels
    assert any(len(k.phases) >= 2 for k in kernels)
    assert cf.traces == 1


def test_eager_layer_norm_keeps_its_fused_kernel():
    x = ember.randn(3, 8, requires_grad=True)
    y = F.layer_norm(x, (8,))
    assert y.grad_fn.op.name == "layer_norm" and y.grad_fn.saved is not None


def test_a_saving_composite_without_an_out_saved_decomposition_stays_one_node():
    from ember.ops import registry
    from ember.ops.registry import COMPOSITE, Op, register

    @register("_scratch_saving_double", COMPOSITE)
    class Doubled(Op):
        saves = True

        def forward(xp, x):
            return x * 2, x.copy()

        def backward(ctx, g):
            return g * 2

        def decompose(x):  # a Tensor, not (out, saved): the tracer must not use it
            return x * 2

    try:
        f = lambda x: ember.autograd.apply(Doubled, x) + 1  # noqa: E731
        cf = ember.compile(f)
        x = ember.randn(5)
        cf(x)
        np.testing.assert_allclose(cf(x).numpy(), f(x).numpy())
        names = [n.name for n in list(cf.entries.values())[0].graph.nodes]
        assert names == ["_scratch_saving_double", "add"]
    finally:
        registry.REGISTRY.pop("_scratch_saving_double", None)
