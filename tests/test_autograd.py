"""Autograd engine: backward/grad against PyTorch, higher-order derivatives, grad modes, hooks,
custom Functions and graph shapes (diamonds, reuse, shared leaves)."""

import numpy as np
import pytest
import torch

import ember
from ember.autograd import Function

RNG = np.random.default_rng(0)


def pair(*shape, seed=0):
    """The same float64 values as an ember and a torch leaf requiring grad."""
    a = np.random.default_rng(seed).normal(size=shape)
    return ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def close(e, t, tol=1e-10):
    e = e.detach().numpy() if isinstance(e, ember.Tensor) else np.asarray(e)
    t = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    np.testing.assert_allclose(e, t, rtol=tol, atol=tol)


# --- backward ---------------------------------------------------------------------------------


def test_backward_with_gradient_argument_matches_torch():
    ex, tx = pair(3, 4)
    w = RNG.normal(size=(3, 4))
    (ex.tanh() * 2).backward(gradient=ember.tensor(w))
    (tx.tanh() * 2).backward(gradient=torch.tensor(w))
    close(ex.grad, tx.grad)


def test_gradient_accumulates_across_backward_calls():
    ex, tx = pair(5)
    for lib_x in (ex, tx):
        (lib_x * lib_x).sum().backward()
        (lib_x.exp()).sum().backward()
    close(ex.grad, tx.grad)
    np.testing.assert_allclose(ex.grad.numpy(), 2 * ex.detach().numpy() + np.exp(ex.detach().numpy()))


def test_retain_graph_allows_second_backward_and_doubles_grad():
    ex, _ = pair(4)
    y = (ex.sin() * ex).sum()
    y.backward(retain_graph=True)
    first = ex.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(ex.grad.numpy(), 2 * first)


def test_backward_inputs_restricts_accumulation():
    a, _ = pair(3, seed=1)
    b, _ = pair(3, seed=2)
    (a * b).sum().backward(inputs=[a])
    assert b.grad is None
    close(a.grad, b.detach().numpy())


def test_grad_fn_chain_is_exposed():
    x, _ = pair(2)
    y = x.exp()
    assert x.is_leaf and not y.is_leaf and y.grad_fn is not None
    assert "Exp" in repr(y)


# --- autograd.grad and higher order -----------------------------------------------------------


def test_third_derivative_of_cube():
    x = ember.tensor([1.5, -2.0, 0.5], dtype=ember.float64, requires_grad=True)
    (g1,) = ember.autograd.grad((x ** 3).sum(), x, create_graph=True)
    (g2,) = ember.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = ember.autograd.grad(g2.sum(), x)
    np.testing.assert_allclose(g1.detach().numpy(), 3 * x.detach().numpy() ** 2)
    np.testing.assert_allclose(g2.detach().numpy(), 6 * x.detach().numpy())
    np.testing.assert_allclose(g3.numpy(), [6.0, 6.0, 6.0])


def test_hessian_vector_product_matches_torch():
    a = RNG.normal(size=(4, 4))
    v = RNG.normal(size=4)
    ex, tx = pair(4, seed=3)

    def f(lib, x, A):
        return ((A @ x).tanh() ** 2).sum() + (x * x * x).sum()

    for x, lib, A, V in ((ex, ember, ember.tensor(a), ember.tensor(v)),
                         (tx, torch, torch.tensor(a), torch.tensor(v))):
        (g,) = (ember.autograd if lib is ember else torch.autograd).grad(f(lib, x, A), x, create_graph=True)
        (hv,) = (ember.autograd if lib is ember else torch.autograd).grad((g * V).sum(), x)
        if lib is ember:
            e_hv, e_g = hv, g
        else:
            t_hv, t_g = hv, g
    close(e_g, t_g)
    close(e_hv, t_hv)


def test_grad_with_grad_outputs_and_several_inputs_matches_torch():
    ea, ta = pair(2, 3, seed=4)
    eb, tb = pair(3, seed=5)
    go = RNG.normal(size=(2, 3))
    eg = ember.autograd.grad(ea * eb + eb.exp(), [ea, eb], grad_outputs=ember.tensor(go))
    tg = torch.autograd.grad(ta * tb + tb.exp(), [ta, tb], grad_outputs=torch.tensor(go))
    for e, t in zip(eg, tg):
        close(e, t)
    assert ea.grad is None and eb.grad is None  # grad() returns, never accumulates


def test_grad_allow_unused_and_materialize():
    a, _ = pair(2, seed=6)
    b, _ = pair(2, seed=7)
    out = (a * 2).sum()
    with pytest.raises(ember.AutogradError, match="not used"):
        ember.autograd.grad(out, [a, b], retain_graph=True)
    ga, gb = ember.autograd.grad(out, [a, b], allow_unused=True, retain_graph=True)
    assert gb is None
    ga, gb = ember.autograd.grad(out, [a, b], materialize_grads=True)
    np.testing.assert_array_equal(gb.numpy(), [0.0, 0.0])


def test_grad_wrt_intermediate_leaves_rest_of_graph_usable():
    x, _ = pair(3)
    y = x * 2
    z = (y * 3).sum()
    (gy,) = ember.autograd.grad(z, y)
    np.testing.assert_allclose(gy.numpy(), [3.0, 3.0, 3.0])
    (y * 5).sum().backward()  # y's own node was never run, so it was not freed
    np.testing.assert_allclose(x.grad.numpy(), [10.0, 10.0, 10.0])


def test_double_backward_through_mixed_ops_matches_torch():
    ex, tx = pair(3, 3, seed=8)
    eg = ember.autograd.grad((ex.sigmoid() @ ex).sum(), ex, create_graph=True)[0]
    tg = torch.autograd.grad((tx.sigmoid() @ tx).sum(), tx, create_graph=True)[0]
    (eg * eg).sum().backward()
    (tg * tg).sum().backward()
    close(ex.grad, tx.grad)


# --- grad modes -------------------------------------------------------------------------------


def test_no_grad_context_and_decorators():
    x, _ = pair(2)
    with ember.no_grad():
        assert not (x * 2).requires_grad
        with ember.enable_grad():
            assert (x * 2).requires_grad
        assert not ember.is_grad_enabled()
    assert ember.is_grad_enabled()

    @ember.no_grad()
    def f(t):
        return t * 2

    @ember.no_grad
    def g(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad
    assert f.__name__ == "f" and ember.is_grad_enabled()


def test_no_grad_decorates_generators_step_by_step():
    x, _ = pair(2)

    @ember.no_grad()
    def gen():
        yield ember.is_grad_enabled()
        yield (x * 2).requires_grad

    it = gen()
    assert next(it) is False
    assert ember.is_grad_enabled()  # restored between steps
    assert next(it) is False


def test_set_grad_enabled_as_call_context_and_decorator():
    x, _ = pair(2)
    ember.set_grad_enabled(False)
    try:
        assert not ember.is_grad_enabled()
    finally:
        ember.set_grad_enabled(True)
    with ember.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert ember.is_grad_enabled()

    @ember.set_grad_enabled(False)
    def f():
        return ember.is_grad_enabled()

    assert ember.is_grad_enabled() and f() is False and ember.is_grad_enabled()


def test_inference_mode():
    x, _ = pair(2)
    with ember.inference_mode():
        assert not (x * 2).requires_grad
        assert ember.autograd.is_inference_mode_enabled()
    with ember.no_grad(), ember.inference_mode(False):
        assert not ember.is_grad_enabled()  # inference_mode(False) changes nothing

    @ember.inference_mode
    def f():
        return (x * 2).requires_grad

    assert f() is False and ember.is_grad_enabled()


def test_mode_restored_after_exception():
    with pytest.raises(RuntimeError), ember.no_grad():
        raise RuntimeError("boom")
    assert ember.is_grad_enabled()


# --- detach, requires_grad_, retain_grad ----------------------------------------------------


def test_detach_shares_storage_and_drops_history():
    x, _ = pair(3)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    d[0] = 100.0
    assert y.detach().numpy()[0] == 100.0  # same storage
    leaf = ember.ones(2).requires_grad_()
    assert leaf.requires_grad and leaf.is_leaf


def test_retain_grad_on_non_leaf_accumulates_and_sees_hooked_grad():
    ex, tx = pair(3)
    ey, ty = ex * 2, tx * 2
    ey.retain_grad()
    ty.retain_grad()
    ey.register_hook(lambda g: g * 10)  # registered after retain_grad, still applied first
    ty.register_hook(lambda g: g * 10)
    (ey.exp()).sum().backward(retain_graph=True)
    (ty.exp()).sum().backward(retain_graph=True)
    close(ey.grad, ty.grad)
    (ey.exp()).sum().backward()
    (ty.exp()).sum().backward()
    close(ey.grad, ty.grad)
    close(ex.grad, tx.grad)


# --- hooks ------------------------------------------------------------------------------------


def test_register_hook_on_leaf_and_non_leaf_matches_torch():
    results = []
    for lib in (ember, torch):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        seen = []
        x.register_hook(lambda g, seen=seen: seen.append(g.detach().numpy().copy()))
        h = x.register_hook(lambda g: g * 2)
        y = x * x
        y.register_hook(lambda g: g + 1)
        (y * 3).sum().backward()
        first = x.grad.numpy().copy()
        h.remove()
        x.grad = None
        (x * x).sum().backward()
        results.append((first, x.grad.numpy().copy(), seen[0]))
    for e, t in zip(*results):
        np.testing.assert_allclose(e, t)


def test_hook_on_leaf_used_twice_fires_once_with_total():
    calls = []
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: calls.append(g.numpy().copy()))
    (x * 2 + x * 3).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], [5.0, 5.0])


def test_post_accumulate_grad_hooks_fire_once_in_reverse_order_of_use():
    ws = [ember.tensor(RNG.normal(size=(4, 4)), requires_grad=True) for _ in range(4)]
    order, grads_seen = [], []
    for i, w in enumerate(ws):
        w.register_post_accumulate_grad_hook(
            lambda t, i=i: (order.append(i), grads_seen.append(t.grad is not None)))
    h = ember.ones(2, 4, dtype=ember.float64)
    for w in ws:
        h = (h @ w).tanh()
    h = h @ ws[0]  # ws[0] used first and last: its grad is complete only at the very end
    h.sum().backward()
    assert order == [3, 2, 1, 0]
    assert all(grads_seen)
    # torch fires in the same order
    tws = [torch.tensor(w.detach().numpy(), requires_grad=True) for w in ws]
    torder = []
    for i, w in enumerate(tws):
        w.register_post_accumulate_grad_hook(lambda t, i=i: torder.append(i))
    th = torch.ones(2, 4, dtype=torch.float64)
    for w in tws:
        th = (th @ w).tanh()
    (th @ tws[0]).sum().backward()
    assert order == torder
    for e, t in zip(ws, tws):
        close(e.grad, t.grad)


def test_post_accumulate_hook_removal():
    x = ember.ones(2, requires_grad=True)
    calls = []
    h = x.register_post_accumulate_grad_hook(lambda t: calls.append(1))
    (x * 2).sum().backward()
    h.remove()
    (x * 2).sum().backward()
    assert calls == [1]


# --- graph shapes -----------------------------------------------------------------------------


def test_diamond_graph_matches_torch():
    ex, tx = pair(3, seed=9)

    def f(x):
        a = x.exp()
        b, c = a * 2, a.sin()
        return (b * c + a).sum()

    f(ex).backward()
    f(tx).backward()
    close(ex.grad, tx.grad)


def test_tensor_used_many_times_and_shared_leaves_match_torch():
    ex, tx = pair(2, 2, seed=10)
    ew, tw = pair(2, 2, seed=11)
    for x, w in ((ex, ew), (tx, tw)):
        h = x
        for _ in range(20):
            h = (h @ w) * 0.5 + x
        (h * h).sum().backward()
    close(ex.grad, tx.grad, 1e-8)
    close(ew.grad, tw.grad, 1e-8)


def test_same_tensor_twice_in_one_op():
    ex, tx = pair(3, seed=12)
    (ex * ex * ex).sum().backward()
    (tx * tx * tx).sum().backward()
    close(ex.grad, tx.grad)


# --- custom Functions ---------------------------------------------------------------------------


class MyExp(Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class ScaleAndShift(Function):
    """Two outputs and a non-tensor argument."""

    @staticmethod
    def forward(ctx, x, scale, y):
        ctx.scale = scale
        ctx.save_for_backward(x, y)
        return x * scale, x * y

    @staticmethod
    def backward(ctx, ga, gb):
        x, y = ctx.saved_tensors
        return ga * ctx.scale + gb * y, None, gb * x


def test_function_forward_backward_and_double_backward():
    x, tx = pair(4, seed=13)
    y = MyExp.apply(x)
    assert y.requires_grad and "MyExp" in repr(y.grad_fn)
    close(y, tx.exp())
    (g,) = ember.autograd.grad(y.sum(), x, create_graph=True)
    close(g, tx.exp())
    (gg,) = ember.autograd.grad(g.sum(), x)  # backward is written with ember ops: differentiable
    close(gg, tx.exp())


def test_function_with_two_outputs_and_non_tensor_argument_matches_torch():
    ex, tx = pair(3, seed=14)
    ey, ty = pair(3, seed=15)
    a, b = ScaleAndShift.apply(ex, 3.0, ey)
    (a.sum() * 2 + (b * b).sum()).backward()
    (tx * 3.0 * 2).sum().add(((tx * ty) ** 2).sum()).backward()
    close(ex.grad, tx.grad)
    close(ey.grad, ty.grad)


def test_function_only_one_output_used_gets_zero_for_the_other():
    ex, tx = pair(3, seed=16)
    ey, _ = pair(3, seed=17)
    a, _ = ScaleAndShift.apply(ex, 2.0, ey)
    a.sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(ey.grad.numpy(), [0.0, 0.0, 0.0])


def test_function_needs_input_grad_and_non_differentiable_outputs():
    seen = {}

    class ArgMaxAndValue(Function):
        @staticmethod
        def forward(ctx, x, y):
            seen["needs"] = ctx.needs_input_grad
            idx = x.argmax()
            ctx.mark_non_differentiable(idx)
            return x.max() + y.sum(), idx

        @staticmethod
        def backward(ctx, g, g_idx):
            return None, g.expand(3)

    x = ember.tensor([1.0, 5.0, 2.0])
    y = ember.zeros(3, requires_grad=True)
    v, idx = ArgMaxAndValue.apply(x, y)
    assert seen["needs"] == (False, True)
    assert v.requires_grad and not idx.requires_grad
    v.backward()
    np.testing.assert_allclose(y.grad.numpy(), [1.0, 1.0, 1.0])


def test_function_without_grad_inputs_records_nothing():
    y = MyExp.apply(ember.tensor([1.0]))
    assert not y.requires_grad and y.grad_fn is None


def test_function_returning_its_input_does_not_clobber_it():
    class Identity(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = ember.ones(2, requires_grad=True)
    y = Identity.apply(x)
    assert x.is_leaf and y is not x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_function_wrong_number_of_gradients_is_an_error():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x + y

        @staticmethod
        def backward(ctx, g):
            return g

    x, _ = pair(2)
    with pytest.raises(ember.AutogradError, match="returned 1 gradients, expected 2"):
        Bad.apply(x, x * 1).sum().backward()


def test_function_saved_tensor_modified_in_place_is_detected():
    x = ember.tensor([1.0, 2.0], requires_grad=True)

    class SaveInput(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(b)
            return a * b

        @staticmethod
        def backward(ctx, g):
            (b,) = ctx.saved_tensors
            return g * b, None

    b = ember.tensor([3.0, 4.0])
    y = SaveInput.apply(x, b)
    b.add_(1)
    with pytest.raises(ember.AutogradError, match="modified by an in-place operation"):
        y.sum().backward()


def test_function_set_materialize_grads_false_passes_none():
    got = {}

    class Two(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 1, x * 2

        @staticmethod
        def backward(ctx, ga, gb):
            got["gb"] = gb
            return ga

    x, _ = pair(2)
    a, _ = Two.apply(x)
    a.sum().backward()
    assert got["gb"] is None


# --- saved_tensor_bytes -------------------------------------------------------------------------


def test_saved_tensor_bytes_counts_activations_not_parameters():
    w = ember.ones(100, 100, requires_grad=True)
    x = ember.ones(10, 100)
    h1 = x @ w  # saves x (4000 bytes) and w (a parameter: not counted)
    assert ember.autograd.saved_tensor_bytes(h1) == 10 * 100 * 4
    h2 = h1.tanh() @ w  # + h1 (tanh input) + tanh output
    assert ember.autograd.saved_tensor_bytes(h2) == 3 * 10 * 100 * 4


def test_integer_results_of_differentiable_inputs_do_not_require_grad():
    for lib in (ember, torch):
        x = lib.tensor([1.5, -2.5], requires_grad=True)
        assert not x.long().requires_grad
        assert not (x > 0).requires_grad
        assert x.double().requires_grad


def test_gradient_seed_and_leaf_grad_keep_the_tensors_dtype():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    (x * 2).backward(gradient=ember.tensor([1.0, 1.0], dtype=ember.float64))
    assert x.grad.dtype is ember.float32
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_backward_reads_saved_outputs_without_recomputing(monkeypatch):
    op = ember.ops.get_op("exp")
    calls = []
    fwd = op.forward
    monkeypatch.setattr(op, "forward", staticmethod(lambda xp, x: calls.append(1) or fwd(xp, x)))
    x = ember.tensor([0.5, 1.0], requires_grad=True)
    (x.exp() * 2).sum().backward()  # mul frees its inputs before exp's backward reads its output
    assert len(calls) == 1
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([0.5, 1.0]), rtol=1e-6)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_backward_with_create_graph_gives_differentiable_grad_like_torch():
    ex, tx = pair(3, seed=18)
    (ex ** 3).sum().backward(create_graph=True)
    (tx ** 3).sum().backward(create_graph=True)
    assert ex.grad.requires_grad and tx.grad.requires_grad
    (eg2,) = ember.autograd.grad(ex.grad.sum(), ex)
    (tg2,) = torch.autograd.grad(tx.grad.sum(), tx)
    close(eg2, tg2)


def test_leaves_given_one_gradient_buffer_do_not_share_their_grad():
    a = ember.ones(3, requires_grad=True)
    b = ember.ones(3, requires_grad=True)
    seed = ember.full((3,), 2.0)
    (a + b).backward(seed)  # add's backward hands the same gradient to both inputs
    a.grad.mul_(10)
    assert b.grad.tolist() == [2.0, 2.0, 2.0]
    assert seed.tolist() == [2.0, 2.0, 2.0]  # nor is the caller's seed adopted
    c = ember.ones(3, requires_grad=True)
    (c * 1).clone().backward(seed)
    c.grad.add_(1)
    assert seed.tolist() == [2.0, 2.0, 2.0]
