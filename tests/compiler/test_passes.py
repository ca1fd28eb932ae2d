"""Each pass on small traced graphs: dce, cse, simplify rules, fusion grouping, memory liveness."""

import numpy as np

import ember
from ember.compiler.passes import epilogue
from ember.compiler.passes.cse_dce import cse, dce
from ember.compiler.passes.fusion import fuse, lower
from ember.compiler.passes.memory import liveness
from ember.compiler.passes.simplify import simplify
from ember.compiler.trace import Tracer, tracing


def _trace(fn, *args):
    tr = Tracer()
    for i, a in enumerate(args):
        tr.add_input(a, i)
    with tracing(tr):
        out = fn(*args)
    return tr.finish(out)


def _names(g):
    return [n.name for n in g.nodes]


def test_dce_drops_unused_results_and_keeps_guards():
    def f(x):
        _ = x.exp()  # dead
        if bool((x > 100).any()):  # a guard: kept although its value is no output
            return x
        return x * 2

    g = _trace(f, ember.randn(4))
    assert dce(g) == 1
    assert _names(g) == ["gt", "any", "guard_bool", "mul"]


def test_cse_merges_identical_nodes():
    g = _trace(lambda x: x.exp() + x.exp(), ember.randn(4))
    assert cse(g) == 1
    dce(g)
    assert _names(g) == ["exp", "add"]
    assert g.nodes[1].inputs[0] == g.nodes[1].inputs[1]


def test_simplify_rules_fire_with_their_reasons():
    g = _trace(lambda x: (x * 1.0 + 0.0).reshape(2, 2).reshape(4).to(ember.float32), ember.randn(4))
    fired = {reason for reason, _ in simplify(g)}
    dce(g)
    assert {"x * 1 = x", "x + 0 = x", "reshape of a reshape is one reshape"} <= fired
    assert _names(g) == ["reshape"]


def test_permute_chains_compose_and_a_transpose_of_a_transpose_disappears():
    g = _trace(lambda x: (x.mT.mT * 2).permute(2, 0, 1).permute(1, 2, 0), ember.randn(2, 3, 4))
    fired = [reason for reason, _ in simplify(g)]
    dce(g)
    assert fired.count("permute of a permute is one permute (a transpose of a transpose: none)") == 2
    assert _names(g) == ["mul"]
    x = ember.randn(2, 3, 4)
    f = lambda x: x.permute(2, 0, 1).permute(2, 0, 1) + 1  # noqa: E731
    g = _trace(f, x)
    simplify(g)
    dce(g)
    assert _names(g) == ["permute", "add"] and g.nodes[0].attrs["dims"] == (1, 2, 0)
    c = ember.compile(f)
    c(x)
    assert np.array_equal(c(x).numpy(), f(x).numpy())


def test_simplify_keeps_a_multiplication_that_broadcasts():
    g = _trace(lambda x, one: x * one, ember.randn(3), ember.ones(2, 3))
    simplify(g)
    assert _names(g) == ["mul"]


def test_fusion_groups_chains_and_closes_a_group_read_from_outside():
    def f(x, w):
        a = (x * 2).exp()  # group 0: mul, exp
        b = a @ w  # matmul reads `a`: group 0 closes
        return (a + 1).sum(1), (b.relu() * 3).sum()

    g = _trace(f, ember.randn(4, 5), ember.randn(5, 5))
    dce(g)
    groups, schedule = fuse(g)
    names = [[g.nodes[i].name for i in grp.all_nodes()] for grp in groups]
    assert ["mul", "exp"] in names  # not joined by `add`: matmul read `a` in between
    assert ["add", "sum"] in names and ["relu", "mul", "sum"] in names
    kinds = [k for k, _ in schedule]
    assert kinds.count("node") == 1  # only the matmul runs as a library op
    kernels, _ = lower(g, groups, schedule)
    assert all(k.args for k in kernels.values())


def test_fusion_epilogue_and_column_reduction():
    g = _trace(lambda x: (x.sum(0) * 0.5, x.mean(1)), ember.randn(6, 7))
    dce(g)
    groups, schedule = fuse(g)
    kernels, _ = lower(g, groups, schedule)
    ks = list(kernels.values())
    assert any(k.column and not k.epilogue for k in ks)  # sum over the leading dim; its *0.5 separate
    assert any(k.epilogue and not k.column for k in ks)  # mean = sum then * (1/7) in one kernel


def test_memory_liveness_peak_is_below_the_total():
    g = _trace(lambda x: ((x * 2).exp() @ x.t()).relu().sum(), ember.randn(64, 64))
    dce(g)
    groups, schedule = fuse(g)
    kernels, _ = lower(g, groups, schedule)
    mem = liveness(g, schedule, groups, kernels)
    assert 0 < mem["plan_peak"] <= mem["eager_total"]


def _grad_graph(f, x):
    def step(x):
        f(x).backward()
        return x.grad
    x = x.detach().requires_grad_()
    g = _trace(step, x)
    fired = {reason for reason, _ in simplify(g)}
    dce(g)
    return g, fired


def test_split_backward_is_one_slice_assembly():
    w = ember.randn(2, 3, 12)
    g, fired = _grad_graph(lambda x: sum(((p * w[..., :4]) ** 2).sum() for p in x.split(4, dim=2)),
                           ember.randn(2, 3, 12))
    assert "a sum of index_add_into of disjoint slices is one assemble_slices" in fired
    assert "index_add_into" not in _names(g) and _names(g).count("assemble_slices") == 1
    n = g.nodes[_names(g).index("assemble_slices")]
    assert len(n.inputs) == 3 and n.attrs["gaps"] == ()


def test_slice_assembly_leaves_overlapping_and_array_keys_alone():
    g, _ = _grad_graph(lambda x: (x[:, :5] * 2).sum() + (x[:, 3:] * 3).sum(), ember.randn(2, 8))
    assert _names(g).count("index_add_into") == 2 and "assemble_slices" not in _names(g)
    idx = ember.tensor([0, 2, 0])  # a repeated index accumulates: not a slice
    g, _ = _grad_graph(lambda x: (x[idx] * 2).sum() + (x[1:2] * 3).sum(), ember.randn(4, 3))
    assert _names(g).count("index_add_into") == 2 and "assemble_slices" not in _names(g)


def test_compiled_slice_assembly_with_gaps_matches_eager():
    def step(x, w):
        a, b, c = x[:, :3], x[:, 4:6], x[:, 7:]  # columns 3 and 6 get no gradient: zeros
        loss = (a * w[:3]).sum() + (b * b).sum() + (c.exp() * w[:2]).sum()
        loss.backward()
        return x.grad

    def run(fn, x, w):
        x = x.detach().requires_grad_()
        return fn(x, w)

    cf = ember.compile(step)
    x, w = ember.randn(5, 9), ember.randn(9)
    run(cf, x, w)
    for _ in range(2):
        x = ember.randn(5, 9)
        np.testing.assert_allclose(run(cf, x, w).numpy(), run(step, x, w).numpy(), rtol=1e-6, atol=1e-6)
    nodes = [n for n in list(cf.entries.values())[0].graph.nodes if n.name == "assemble_slices"]
    assert len(nodes) == 1 and nodes[0].attrs["gaps"] == ((slice(0, 5), slice(3, 4)), (slice(0, 5), slice(6, 7)))


def test_slice_assembly_reads_merged_attention_heads_without_the_reshape_copy():
    def f(x):  # q, k, v = x.split(C); heads (B, nh, T, hs) merged back by the backward's reshape
        q, k, v = (p.reshape(2, 3, 2, 2).transpose(1, 2) for p in x.split(4, dim=2))
        return ((q * k).exp() * v).sum()

    g, _ = _grad_graph(f, ember.randn(2, 3, 12))
    n = g.nodes[_names(g).index("assemble_slices")]
    producers = {o: m.name for m in g.nodes for o in m.outs}
    assert len(n.inputs) == 3 and all(producers.get(v) != "reshape" for v in n.inputs)
    x = ember.randn(2, 3, 12)
    cf = ember.compile(lambda x: (f(x).backward(), x.grad)[1])
    run = lambda fn: fn(x.detach().requires_grad_())  # noqa: E731
    run(cf)
    np.testing.assert_allclose(run(cf).numpy(), run(lambda x: (f(x).backward(), x.grad)[1]).numpy(), rtol=1e-6)


def test_rematerialisation_recomputes_layer_norms_centred_input_after_the_variance():
    def f(x):
        xc = x - x.mean(1, keepdim=True)
        return xc * ((xc * xc).mean(1, keepdim=True) + 1e-5).rsqrt()

    g = _trace(f, ember.randn(8, 16))
    dce(g)
    groups, schedule = fuse(g)
    assert _names(g).count("sub") == 2  # the normalisation computes x - mean again
    kernels, _ = lower(g, groups, schedule)
    full = [a for k in kernels.values() for a in k.args if a.output and g.values[a.vid].shape == (8, 16)]
    assert len(full) == 1  # only the result is written full-size: xc is never stored
    x = ember.randn(8, 16)
    cf = ember.compile(f)
    cf(x)
    np.testing.assert_allclose(cf(x).numpy(), f(x).numpy(), rtol=1e-5, atol=1e-6)


def test_a_bias_add_becomes_the_matmul_epilogue_only_when_the_product_has_no_other_use():
    lin = ember.nn.Linear(8, 24)
    for x in (ember.randn(5, 8), ember.randn(2, 5, 8)):  # (2, 5, 8): a (10, 8) product reshaped, then the add
        g = _trace(lambda x: lin(x).exp(), x)  # exp: not an epilogue activation
        fired = simplify(g)
        dce(g)
        names = [n.name for n in g.nodes]
        assert "matmul_bias" in names and "matmul" not in names and "add" not in names
        assert any("epilogue" in reason for reason, _ in fired)
    assert epilogue.matmul_bias(_trace(lambda x: lin(x) * 2, ember.randn(3, 8))) == 1  # the pass alone
    x = ember.randn(2, 5, 8)
    # the product is also returned: it is needed without the bias, so nothing is folded
    g = _trace(lambda x: (lambda p: (p + lin.bias, p))(x @ lin.weight.mT), x)
    simplify(g)
    assert "matmul_bias" not in [n.name for n in g.nodes]
    cf = ember.compile(lambda x: lin(x).exp())
    with ember.no_grad():
        cf(x)
        np.testing.assert_allclose(cf(x).numpy(), lin(x).exp().numpy(), rtol=1e-6, atol=1e-7)


def test_an_activation_backward_and_its_bias_gradient_join_the_product_that_feeds_them():
    """Linear-GELU-Linear's backward: the gradient reaching the GELU is a product (through a reshape
    on 3-D input); its gelu_backward and the first layer's bias-gradient sum become one
    matmul_act_backward with two outputs, and the compiled step's gradients equal eager's."""
    ember.manual_seed(0)
    l1, l2 = ember.nn.Linear(8, 32), ember.nn.Linear(32, 4)
    params = [*l1.parameters(), *l2.parameters()]

    def f(x):
        for p in params:
            p.grad = None
        loss = l2(ember.nn.functional.gelu(l1(x), approximate="tanh")).square().mean()
        loss.backward()
        return loss

    x = ember.randn(2, 20, 8)
    f(x)
    want = [p.grad.numpy().copy() for p in params]
    cf = ember.compile(f)
    cf(x)
    g = list(cf.entries.values())[0].graph
    fused = [n for n in g.nodes if n.name == "matmul_act_backward"]
    assert len(fused) == 1 and fused[0].attrs == {"act": "gelu_tanh", "with_sum": True} and len(fused[0].outs) == 2
    assert "gelu_backward" not in _names(g)
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.grad.numpy(), w, rtol=1e-5, atol=1e-7)
    # the product feeding a second consumer as well is left alone
    from ember.ops._util import apply
    from ember.ops.elementwise import ThresholdBackward
    g2 = _trace(lambda a, b, s: (lambda p: (apply(ThresholdBackward, p, s), p))(a @ b),
                ember.randn(6, 5), ember.randn(5, 7), ember.randn(6, 7))
    simplify(g2)
    assert "matmul_act_backward" not in _names(g2)
    g3 = _trace(lambda a, b, s: apply(ThresholdBackward, a @ b, s), ember.randn(6, 5), ember.randn(5, 7),
                ember.randn(6, 7))
    simplify(g3)
    assert _names(g3) == ["matmul_act_backward"]


def test_an_expand_read_only_by_broadcasting_elementwise_ops_is_dropped():
    s, w = ember.randn(1), ember.randn(9)
    g = _trace(lambda s, w: (s.expand(9) * w, (s.expand(9) + 1)), s, w)  # the second needs the expand
    simplify(g)
    dce(g)
    assert _names(g).count("expand") == 1
    g = _trace(lambda s, w: -(s.expand(9) * w), s, w)
    simplify(g)
    dce(g)
    assert "expand" not in _names(g)
    cf = ember.compile(lambda s, w: -(s.expand(9) * w))
    cf(s, w)
    np.testing.assert_allclose(cf(s, w).numpy(), (-(s.expand(9) * w)).numpy())


def test_the_assemble_remat_and_copies_passes_called_on_their_own():
    """passes/assemble.py, passes/remat.py and passes/copies.py through their own entry points:
    the count each returns and what it builds, on small graphs."""
    from ember.compiler.passes import assemble, copies, remat
    # assemble: the three-way split's backward is one assembly (the add chain it replaces is dead)
    x = ember.randn(2, 3, 12).requires_grad_()

    def step(x):
        sum(((p * (i + 1)) ** 2).sum() for i, p in enumerate(x.split(4, dim=2))).backward()
        return x.grad
    g = _trace(step, x)
    dce(g)
    assert assemble.assemble_slices(g) == 1
    dce(g)  # drops the index_add_into and add nodes it replaced
    assert assemble.assemble_slices(g) == 0 and "index_add_into" not in _names(g)
    (n,) = [m for m in g.nodes if m.name == "assemble_slices"]
    full = slice(None)
    assert sorted(k[2].start for k in n.attrs["keys"]) == [0, 4, 8] and n.attrs["gaps"] == ()
    assert all(k[:2] == (full, full) and k[2].stop - k[2].start == 4 for k in n.attrs["keys"])
    # copies: that assembly lowered to three loop nests, each writing its 4 columns of 12
    groups, schedule = fuse(g)
    gi = next(i for i, grp in enumerate(groups) if grp.members and g.nodes[grp.members[0]].name == "assemble_slices")
    k = copies.lower_copy(g, groups[gi], "k", {})
    assert len(k.pieces) == 3 and sorted(p.dst_offset for p in k.pieces) == [0, 4, 8]
    assert all(p.src is not None and p.dims[-1] == 4 for p in k.pieces)
    # remat: layer norm's x - mean gets one copy, next to the normalisation
    g = _trace(lambda x: (lambda xc: xc * ((xc * xc).mean(1, keepdim=True) + 1e-5).rsqrt())(
        x - x.mean(1, keepdim=True)), ember.randn(8, 16))
    dce(g)
    assert _names(g).count("sub") == 1
    assert remat.rematerialize(g) == 1 and _names(g).count("sub") == 2
