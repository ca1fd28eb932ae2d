"""Fused C kernels against eager: random graphs (hypothesis), fusion counts, float64, layouts."""

import contextlib
import ctypes

import numpy as np
import pytest
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
         lambda x: x.clamp(-0.5, 0.5), lambda x: (x * x + 1).rsqrt(),
         lambda x: ember.where((x * 1e38 * 1e3).isinf(), x, -x)]
BINARY = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / (b.abs() + 1),
          lambda a, b: ember.maximum(a, b), lambda a, b: ember.where(a > b, a, b * 2)]
REDUCE = [lambda x, d: x.sum(d), lambda x, d: x.mean(d, keepdim=True), lambda x, d: x.amax(d),
          lambda x, d: x.amin(d, keepdim=True), lambda x, d: (x > 0.3).any(d).to(x.dtype),
          lambda x, d: (x.abs() < 1.5).all(d, keepdim=True).to(x.dtype) * x.sum(d, keepdim=True)]
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


def test_softmax_is_one_row_kernel_of_three_phases():
    def f(x):
        e = (x - x.amax(1, keepdim=True)).exp()
        return e / e.sum(1, keepdim=True)

    cf = ember.compile(f)
    x = ember.randn(32, 100)
    cf(x)
    _close(cf(x), f(x))
    rep = list(cf.entries.values())[0].report
    assert rep["steps"]["kernels"] == 1 and rep["steps"]["library_ops"] == 0
    (k,) = rep["kernels"].values()  # per row: amax | sub-exp-sum | div (needs the sum)
    assert [[n for n in p.nodes] for p in k.phases] and len(k.phases) == 3 and k.dims[:k.n_outer] == (32,)


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
    (k,) = rep["kernels"].values()  # one row kernel: the mean, then the variance from it, per row
    assert len(k.phases) == 2 and all(p.epilogue for p in k.phases)


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


def test_matmul_with_its_bias_and_activation_is_one_library_op():
    """(x @ w + b).relu() and a linear layer followed by each epilogue activation on 3-D input (a
    reshaped product) become one matmul_bias_act: no fused kernel left, the same values as eager."""
    w, b = ember.randn(8, 16), ember.randn(16)
    lin = ember.nn.Linear(8, 16)
    F = ember.nn.functional
    acts = [lambda h: F.gelu(h, approximate="tanh"), F.gelu, ember.tanh, ember.sigmoid, F.silu]
    cases = [(lambda x: (x @ w + b).relu(), ember.randn(4, 8))]
    cases += [(lambda x, act=act: act(lin(x)), 3 * ember.randn(3, 5, 8)) for act in acts]
    for f, x in cases:
        with ember.no_grad():
            cf = ember.compile(f)
            cf(x)
            _close(cf(x), f(x))
        entry = list(cf.entries.values())[0]
        steps = entry.report["steps"]
        assert (steps["kernels"], steps["library_ops"] - steps["views"], steps["optimizer_steps"]) == (0, 1, 0)
        assert [n.name for n in entry.graph.nodes if n.kind != "movement"] == ["matmul_bias_act"]


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


ACTIVATIONS = [(lambda h: ember.nn.functional.gelu(h, approximate="tanh"), "gelu_backward"),
               (lambda h: h.relu(), "threshold_backward"), (lambda h: h.tanh(), "tanh_backward"),
               (lambda h: h.sigmoid(), "sigmoid_backward")]


@pytest.mark.parametrize("act,bw", ACTIVATIONS, ids=[bw for _, bw in ACTIVATIONS])
def test_fused_activation_backward_ops_are_kernels_that_match_eager(act, bw):
    lin = ember.nn.Linear(6, 40)

    def step(x):
        (act(lin(x)) * x.sum(1, keepdim=True)).sum().backward()
        g = lin.weight.grad
        lin.zero_grad()
        return g

    cf = ember.compile(step)
    x = ember.randn(30, 6)
    cf(x)
    got = cf(x)
    assert bw in " ".join(n for _, names in list(cf.entries.values())[0].report["groups"] for n in names)
    _close(got, step(x))


def test_column_reductions_split_into_chunks_match_eager():
    """Enough reduced rows for several fixed chunks (and threads): sum with an
    elementwise output that must still be written, amax and amin, keepdim and not."""
    from ember.compiler.codegen_c import column_chunks
    assert column_chunks(2048) > 1

    def f(x, b):
        y = (x * 2 + b).tanh()
        return y, y.sum(0), x.amax(0, keepdim=True), (x - b).amin((0, 1))

    cf = ember.compile(f)
    x, b = ember.randn(1024, 8, 129), ember.randn(129)  # 2^20 + 2^13 points: a parallel kernel
    cf(x, b)
    got = cf(x, b)
    for g, want in zip(got, f(x, b)):
        _close(g, want)
    for g, again in zip(got, cf(x, b)):  # chunks are combined in a fixed order: bitwise repeatable
        np.testing.assert_array_equal(g.numpy(), again.numpy())
    ks = list(cf.entries.values())[0].report["kernels"].values()
    assert sum(k.column for k in ks) == 3


def _split_step(x):
    """q, k, v = x.split(C, dim=2), heads split and merged back as in attention; x.grad."""
    B, T, C3 = x.shape
    q, k, v = (p.reshape(B, T, 2, C3 // 6).transpose(1, 2) for p in x.split(C3 // 3, dim=2))
    ((q * k).exp() * v + (q * 0.5).sum()).sum().backward()
    return x.grad


def test_split_backward_is_one_copy_kernel_that_matches_eager():
    cf = ember.compile(_split_step)
    x = ember.randn(3, 5, 12)
    cf(x.detach().requires_grad_())
    for _ in range(2):
        x = ember.randn(3, 5, 12)
        _close(cf(x.detach().requires_grad_()), _split_step(x.detach().requires_grad_()))
    rep = list(cf.entries.values())[0].report
    copies = [k for k in rep["kernels"].values() if k.pieces]
    assert len(copies) == 1 and len(copies[0].pieces) == 3  # three slices, no gap


def test_copy_kernel_zeroes_only_the_gaps():
    def f(x, w):
        a, b = x[:, 1:3], x[:, 5:]  # columns 0, 3 and 4 are gaps
        ((a * w[:2]).sum() + (b.exp()).sum()).backward()
        return x.grad

    cf = ember.compile(f)
    x, w = ember.randn(4, 7), ember.randn(7)
    cf(x.detach().requires_grad_(), w)
    out = cf(x.detach().requires_grad_(), w)
    _close(out, f(x.detach().requires_grad_(), w))
    assert (out.numpy()[:, [0, 3, 4]] == 0).all()
    k = [k for k in list(cf.entries.values())[0].report["kernels"].values() if k.pieces][0]
    assert sum(p.src is None for p in k.pieces) == 2  # column 0, columns 3-4


def test_a_slice_its_gradient_cannot_view_runs_through_the_registry_kernel():
    def f(x):
        a, b = x[:, :4].reshape(16), x[:, 4:]  # a (4, 4) slice of rows of 6 is no (16,) view
        ((a * a).sum() + b.exp().sum()).backward()
        return x.grad

    cf = ember.compile(f)
    x = ember.randn(4, 6)
    cf(x.detach().requires_grad_())
    _close(cf(x.detach().requires_grad_()), f(x.detach().requires_grad_()))
    e = list(cf.entries.values())[0]
    assert "assemble_slices" in [n.name for n in e.graph.nodes]
    assert not any(k.pieces for k in e.report["kernels"].values())


def test_index_add_into_of_an_index_array_is_a_scatter_add_kernel():
    """x[idx]'s backward (embedding gradients): repeated and negative indices accumulate in
    NumPy's add.at order, a 2-D index, an int32 index, a transposed (strided) gradient."""
    w = ember.randn(7, 5)

    def step(x, idx, idx32):
        (x[idx] * w[:4].t().reshape(1, 1, 5, 4).permute(0, 1, 3, 2)).sum().backward()
        loss = (x[idx32].t() ** 2).sum()
        loss.backward()
        return x.grad

    cf = ember.compile(step)
    idx = ember.tensor([[0, 2, 2, -1], [6, 0, 2, 3]])  # (2, 4): repeats and a negative index
    idx32 = ember.tensor([1, 1, 4], dtype=ember.int32)
    run = lambda fn: fn(ember.randn(7, 5).requires_grad_(), idx, idx32)  # noqa: E731
    ember.manual_seed(0)
    run(cf)
    for seed in (1, 2):
        ember.manual_seed(seed)
        got = run(cf)
        ember.manual_seed(seed)
        np.testing.assert_array_equal(got.numpy(), run(step).numpy())  # the same order of additions
    ks = list(cf.entries.values())[0].report["kernels"].values()
    assert sum(k.scatter is not None for k in ks) == 2


def test_reductions_over_a_middle_dim_walk_memory_in_order():
    """x.sum(1) of (B, T, C): B outer (split between threads when big enough), T, then C inner
    and contiguous, instead of an inner loop striding over T."""
    def f(x):
        y = x * 2
        return y.sum(1), x.amax(1, keepdim=True), y.mean(1), (x - 1).amin((0, 2), keepdim=True)

    cf = ember.compile(f)
    for shape in [(3, 7, 5), (64, 130, 128)]:  # the second: parallel over B
        x = ember.randn(*shape)
        cf(x)
        for got, want in zip(cf(x), f(x)):
            _close(got, want)
    ks = [k for e in cf.entries.values() for k in e.report["kernels"].values() if k.reduce]
    # the sum (shared with mean's by cse) and amax, per signature; amin over (0, 2) keeps the middle
    # dim and reduces the innermost: a row kernel
    assert [(k.reduce[0], k.column, k.column_outer) for k in ks] == [
        ("sum", True, 1), ("amax", True, 1), ("amin", False, 0)] * 2


@pytest.mark.parametrize("act", ["GELU", "Tanh", "Sigmoid", "SiLU"])
def test_training_through_each_epilogue_activation_matches_eager(act):
    """Three SGD steps of Linear-act-Linear, compiled (the act folded into matmul_bias_act, its
    backward reading the saved pre-activation or the output) against eager."""
    def make():
        ember.manual_seed(3)
        model = ember.nn.Sequential(ember.nn.Linear(8, 32), getattr(ember.nn, act)(), ember.nn.Linear(32, 4))
        return model, ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    x, y = 2 * ember.randn(16, 8), ember.randint(0, 4, (16,))
    results = []
    for compiled in (False, True):
        model, opt = make()

        def step(x, y, model=model, opt=opt):
            opt.zero_grad()
            loss = ember.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        run = ember.compile(step) if compiled else step
        losses = [float(run(x, y)) for _ in range(3)]
        results.append((losses, [p.detach().numpy().copy() for p in model.parameters()]))
        if compiled:
            names = [n.name for n in list(run.entries.values())[0].graph.nodes]
            assert "matmul_bias_act" in names
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
    for got, want in zip(results[1][1], results[0][1]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_phase_reading_another_rows_values_is_not_merged(monkeypatch):
    """x / x.sum(1) on a square x divides column j by row j's sum: the division reads the row
    sums along its inner loop (other rows' values), so the row kernel is split back into two
    kernels; with keepdim=True (row i by row i's sum) they are one row kernel. Both equal eager."""
    x = ember.randn(12, 12)
    for f, merged in ((lambda x: x / x.sum(1), False), (lambda x: x / x.sum(1, keepdim=True), True)):
        cf = ember.compile(f)
        cf(x)
        _close(cf(x), f(x))
        kernels = list(cf.entries.values())[0].report["kernels"].values()
        assert any(k.phases for k in kernels) == merged
    from ember.compiler.passes import fusion
    monkeypatch.setattr(fusion, "ROW_KERNELS", False)
    f = lambda x: (lambda e: e / e.sum(1, keepdim=True))(x.exp())  # noqa: E731
    cf = ember.compile(f)
    cf(x)
    _close(cf(x), f(x))
    assert not any(k.phases for k in list(cf.entries.values())[0].report["kernels"].values())


def test_layer_norm_forward_is_one_row_kernel_and_its_source_shows_the_phases():
    ln = ember.nn.LayerNorm(64)
    x = ember.randn(4, 100, 64) * 3 + 1  # big enough for the row loop to go parallel
    with ember.no_grad():
        cf = ember.compile(ln)
        cf(x)
        _close(cf(x), ln(x))
    entry = list(cf.entries.values())[0]
    (k,) = entry.report["kernels"].values()
    assert len(k.phases) == 3 and k.dims[k.n_outer:] == (64,)
    src = cf.explain(kernel=k.name)
    assert "/* phase 3 */" in src and src.count("#pragma omp parallel for") == 1


def test_a_convolutions_relu_folds_into_the_product_through_its_views():
    """conv2d is unfold, a (N*H*W, C_out) product with its bias, then reshape / permute views to
    (N, C_out, H, W); the relu after it becomes the product's epilogue, replayed through the same
    views (same values and layout as eager)."""
    conv = ember.nn.Conv2d(3, 8, 3, padding=1)
    x = ember.randn(2, 3, 10, 10)
    f = lambda x: conv(x).relu()  # noqa: E731
    with ember.no_grad():
        cf = ember.compile(f)
        cf(x)
        got, want = cf(x), f(x)
    _close(got, want)
    assert got._data.strides == want._data.strides
    entry = list(cf.entries.values())[0]
    names = [n.name for n in entry.graph.nodes]
    assert "matmul_bias_act" in names and "relu" not in names and entry.report["steps"]["kernels"] == 0


def test_index_range_guards_and_inf_checks_are_kernels():
    """The `(idx < 0) | (idx >= n)` range check embedding and cross_entropy guard on reduces with
    `any` inside the kernel that computes it, and log-softmax's isinf is fused: no NumPy op left.
    any / all over rows, columns and everything, with infs and NaNs, against eager."""
    def f(x, idx, z):
        bad = ((idx < 0) | (idx >= 7)).any()
        m = x.amax(1, keepdim=True)  # a row with a NaN: NaN, as NumPy's max gives
        m = ember.where(m.isinf(), 0.0, m)
        return (bad, (x > 0).any(1), (x > 0).all(0, keepdim=True), x.isnan().any(), x.isfinite().all(1), x - m,
                x.amax(0), z.amin(0), (z > 3).any(0))  # column reductions; z's in chunks, in parallel

    x = ember.randn(40, 300)
    x[3, 5], x[7] = float("inf"), float("-inf")
    x[9, 9] = float("nan")
    z = ember.randn(4096, 16)
    z[4000, 2] = float("nan")
    idx = ember.randint(0, 7, (64,))
    cf = ember.compile(f)
    cf(x, idx, z)
    for got, want in zip(cf(x, idx, z), f(x, idx, z)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    entry = list(cf.entries.values())[0]
    assert entry.report["steps"]["library_ops"] - entry.report["steps"]["views"] == 0


def _layer_norm_backward_sums(g, y, w):
    """A layer norm's backward as the compiler sees it: the bias and weight gradients (column sums
    over the rows) and the input gradient (row sums)."""
    gw = g * w
    dx = gw - gw.mean(-1, keepdim=True) - y * (gw * y).mean(-1, keepdim=True)
    return g.sum((0, 1)), (g * y).sum((0, 1)), dx, dx.sum((0, 1))


@contextlib.contextmanager
def thread_limit(n: int):
    """OpenMP's thread count for the generated kernels (libgomp's setting for this thread)."""
    gomp = ctypes.CDLL("libgomp.so.1")
    before = gomp.omp_get_max_threads()
    gomp.omp_set_num_threads(n)
    try:
        yield
    finally:
        gomp.omp_set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
def test_column_sums_over_a_row_kernels_rows_are_phases_of_it(threads):
    """The bias and weight gradients and a layer norm's backward row sums are one kernel: the column
    sums add each row into partials of fixed row chunks, combined in chunk order, so the result is
    the same for any number of threads, and close to eager's."""
    g, y, w = ember.randn(16, 128, 128), ember.randn(16, 128, 128), ember.randn(128)
    cf = ember.compile(_layer_norm_backward_sums)
    with thread_limit(threads):
        cf(g, y, w)
        got = cf(g, y, w)
    for a, b in zip(got, _layer_norm_backward_sums(g, y, w)):
        _close(a, b)
    (k,) = list(cf.entries.values())[0].report["kernels"].values()
    assert [p.column for p in k.phases].count(True) == 3 and k.n_outer == 1
    src = cf.explain(kernel=k.name)
    assert "partials added in chunk order" in src and "calloc" in src
    if threads == 2:  # bit-equal to the one-thread result
        with thread_limit(1):
            one = cf(g, y, w)
        for a, b in zip(got, one):
            assert np.array_equal(a.numpy(), b.numpy())


def test_a_phase_reading_a_column_sum_is_not_merged_and_the_switch_turns_them_off(monkeypatch):
    from ember.compiler.passes import fusion
    x = ember.randn(64, 256)
    f = lambda x: x - x.sum(0)  # noqa: E731  (every row needs the finished column sums)
    cf = ember.compile(f)
    cf(x)
    _close(cf(x), f(x))
    assert not any(k.phases for k in list(cf.entries.values())[0].report["kernels"].values())
    monkeypatch.setattr(fusion, "ROW_COLUMN_PHASES", False)
    g, y, w = ember.randn(4, 64, 32), ember.randn(4, 64, 32), ember.randn(32)
    cf = ember.compile(_layer_norm_backward_sums)
    cf(g, y, w)
    for a, b in zip(cf(g, y, w), _layer_norm_backward_sums(g, y, w)):
        _close(a, b)
    kernels = list(cf.entries.values())[0].report["kernels"].values()
    assert not any(p.column for k in kernels for p in k.phases)
