"""Capture and guards: what the tracer records, retracing, graph breaks, value guards."""

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember.compiler import GraphBreak


def _close(a, b, rtol=1e-5):
    a, b = np.asarray(a.numpy(), np.float64), np.asarray(b.numpy(), np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, np.abs(b).max()))


def test_same_shape_replays_without_retracing_and_new_shape_retraces():
    cf = ember.compile(lambda x, y: (x * y + 1).relu().sum(1), backend="numpy")
    x, y = ember.randn(4, 3), ember.randn(4, 3)
    for _ in range(3):
        _close(cf(x, y), (x * y + 1).relu().sum(1))
    assert cf.traces == 1
    x2, y2 = ember.randn(5, 3), ember.randn(5, 3)
    _close(cf(x2, y2), (x2 * y2 + 1).relu().sum(1))
    assert cf.traces == 2
    cf(x, y)
    assert cf.traces == 2


def test_replay_reads_new_input_values_and_live_parameters():
    w = ember.randn(3, 2)
    cf = ember.compile(lambda x: (x @ w).tanh(), backend="numpy")
    cf(ember.randn(4, 3))
    x = ember.randn(4, 3)
    _close(cf(x), (x @ w).tanh())
    with ember.no_grad():
        w.mul_(2.0)  # a parameter changed between calls: replay must read its live buffer
    _close(cf(x), (x @ w).tanh())
    assert cf.traces == 1


def test_item_is_a_graph_break_with_location_and_eager_fallback():
    def f(x):
        s = x.sum().item()
        return x * s

    cf = ember.compile(f)
    x = ember.randn(3)
    with pytest.warns(UserWarning, match=r"graph break at .*test_capture.py:\d+ in f: Tensor.item\(\)"):
        out = cf(x)
    _close(out, f(x))
    x2 = ember.randn(3)
    _close(cf(x2), f(x2))  # the signature now runs eagerly, with the new values
    assert "runs eagerly" in cf.explain()


def test_fullgraph_turns_a_graph_break_into_an_error():
    cf = ember.compile(lambda x: x * x.sum().item(), fullgraph=True)
    with pytest.raises(GraphBreak, match="item"):
        cf(ember.randn(3))


def test_random_draws_inside_the_function_break_the_graph():
    cf = ember.compile(lambda x: x + ember.randn(3))
    with pytest.warns(UserWarning, match="random numbers"):
        cf(ember.randn(3))


def test_dropout_masks_are_drawn_in_the_graph_as_eager_draws_them():
    """bernoulli (dropout's mask) is a graph node that draws again at every replay from the same
    generator: the compiled and eager calls give the same outputs and leave the generator alike, an
    unused draw included (dead-code elimination keeps it)."""
    def f(x):
        ember.nn.functional.dropout(x, 0.9)  # drawn and thrown away: still advances the generator
        return ember.nn.functional.dropout(x * 2, 0.3).sum(0)

    x = ember.randn(40, 6)
    cf = ember.compile(f)
    runs = []
    for fn in (f, cf):
        ember.manual_seed(7)
        outs = [fn(x).numpy() for _ in range(3)]
        runs.append((outs, ember.rand(4).numpy()))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_allclose(b, a, rtol=1e-6)
    assert not np.allclose(runs[1][0][1], runs[1][0][2])  # a fresh mask every call
    np.testing.assert_array_equal(runs[1][1], runs[0][1])  # the generator ends in the same state
    entry = next(iter(cf.entries.values()))
    assert entry.eager_reason is None and sum(n.name == "random" for n in entry.graph.nodes) == 2


def test_bool_of_a_tensor_is_a_value_guard_checked_at_replay():
    def f(x):
        if bool((x > 10).any()):  # data-dependent branch, specialised at trace time
            return x * 0
        return x * 2

    cf = ember.compile(f, backend="numpy")
    x = ember.randn(4)
    _close(cf(x), x * 2)
    big = ember.full((4,), 20.0)
    _close(cf(big), big * 0)  # the guard fails, the call runs eagerly and takes the other branch
    assert cf.traces == 1


def test_cross_entropy_targets_are_inputs_not_constants():
    cf = ember.compile(lambda x, y: F.cross_entropy(x, y), backend="numpy")
    x = ember.randn(6, 4)
    cf(x, ember.tensor([0, 1, 2, 3, 0, 1]))
    y2 = ember.tensor([3, 3, 2, 1, 0, 0])
    _close(cf(x, y2), F.cross_entropy(x, y2))


def test_index_tensors_inside_op_attributes_are_read_at_replay():
    """x[idx] passes idx's buffer inside the op's attributes: it must not be baked in."""
    table = ember.randn(10, 3)
    cf = ember.compile(lambda idx: ember.nn.functional.embedding(idx, table) * 2, backend="numpy")
    cf(ember.tensor([[1, 2], [3, 4]]))
    idx = ember.tensor([[9, 0], [5, 5]])
    _close(cf(idx), ember.nn.functional.embedding(idx, table) * 2)
    assert cf.traces == 1


def test_training_mode_is_part_of_the_signature():
    m = ember.nn.Sequential(ember.nn.Linear(3, 3), ember.nn.Dropout(0.0))
    cf = ember.compile(m, backend="numpy")
    x = ember.randn(2, 3)
    with ember.no_grad():
        cf(x)
        m.eval()
        cf(x)
    assert cf.traces == 2


def test_forward_output_requiring_grad_falls_back_to_eager():
    lin = ember.nn.Linear(3, 2)
    cf = ember.compile(lin)
    with pytest.warns(UserWarning, match="requires grad"):
        out = cf(ember.randn(4, 3))
    assert out.requires_grad  # the eager result, still differentiable


def test_explain_lists_graph_passes_groups_and_guards():
    cf = ember.compile(lambda x: (x * 1.0 + 0.0).exp().sum(), backend="numpy")
    cf(ember.randn(8))
    text = cf.explain()
    for part in ("guards", "captured graph", "after simplify", "x * 1 = x", "fusion groups", "per call:",
                 "Tensor shape=(8,)"):
        assert part in text, part
    assert cf.to_dot().startswith("digraph")


def test_the_same_tensor_passed_twice_is_part_of_the_signature():
    cf = ember.compile(lambda a, b: a * 2 + b, backend="numpy")
    x, y = ember.randn(3), ember.randn(3)
    _close(cf(x, x), x * 2 + x)
    _close(cf(x, y), x * 2 + y)
    assert cf.traces == 2


def test_zero_grad_without_set_to_none_and_gradient_accumulation():
    from ember import optim
    results = []
    for compiled in (False, True):
        ember.manual_seed(0)
        lin = ember.nn.Linear(4, 3)
        opt = optim.SGD(lin.parameters(), lr=0.1)

        def step(x, lin=lin, opt=opt):
            opt.zero_grad(set_to_none=False)
            lin(x).square().sum().backward()
            lin(x * 2).sum().backward()  # a second backward accumulates into .grad in place
            opt.step()
            return lin.weight.grad.sum()

        fn = ember.compile(step) if compiled else step
        xs = [ember.randn(5, 4) for _ in range(3)]
        outs = [fn(x) for x in xs + xs]
        results.append(([o.numpy().copy() for o in outs], lin.weight.detach().numpy().copy()))
    for a, b in zip(results[0][0] + [results[0][1]], results[1][0] + [results[1][1]]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gradients_a_step_replaces_unread_are_released_before_it_runs():
    """A step that sets the gradients to None first (zero_grad) never reads the old ones, so the
    replay drops them at its start, as eager does at zero_grad: their memory is free for the new
    ones. A step that accumulates into the gradients of earlier calls reads them and keeps them
    (and still equals eager)."""
    from ember import optim
    x = ember.randn(5, 4)
    results = []
    for zero, compiled in ((True, True), (False, True), (False, False)):
        ember.manual_seed(0)
        lin = ember.nn.Linear(4, 3)
        opt = optim.SGD(lin.parameters(), lr=0.1)

        def step(x, lin=lin, opt=opt, zero=zero):
            if zero:
                opt.zero_grad()
            lin(x).square().sum().backward()
            opt.step()
        fn = ember.compile(step) if compiled else step
        for _ in range(3):
            fn(x)
        if not compiled:
            results.append(lin.weight.grad.numpy().copy())
            continue
        plan = list(fn.entries.values())[-1].plan  # the signature of the later calls (gradients present)
        assert len(plan.release) == (2 if zero else 0)
        if zero:
            old = lin.weight.grad
            seen = []
            first = plan.steps[0]
            plan.steps[0] = lambda env, seen=seen, w=lin.weight, first=first: (seen.append(w.grad), first(env))
            fn(x)
            assert seen == [None] and lin.weight.grad is not old and lin.weight.grad is not None
        else:
            results.append(lin.weight.grad.numpy().copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)
