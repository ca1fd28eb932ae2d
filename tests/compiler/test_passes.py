"""Each pass on small traced graphs: dce, cse, simplify rules, fusion grouping, memory liveness."""

import ember
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
