"""Gathers in compiled code: one-hot gathers and scatter-adds (passes/onehot.py), cross-entropy's
pick fused into log-softmax's row kernel, row-gather kernels for guarded `table[idx]` (embedding),
and the index guards that keep eager's errors."""

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember import nn, optim
from ember.compiler.passes.cse_dce import dce
from ember.compiler.passes.onehot import index_guards, onehot
from ember.errors import IndexingError

from .test_passes import _names, _trace


def _groups(compiled) -> list:
    return [names for _, names in next(iter(compiled.entries.values())).report["groups"]]


def test_the_onehot_pass_rewrites_a_one_per_row_gather_with_a_guard():
    x, idx = ember.randn(4, 5), ember.tensor([[1], [0], [4], [2]])
    g = _trace(lambda x, i: x.gather(1, i), x, idx)
    assert onehot(g) == 1
    dce(g)
    assert _names(g) == ["lt", "ge", "bitwise_or", "any", "guard_bool", "eq", "where", "sum"]
    assert len(index_guards(g)) == 1 and list(index_guards(g).values()) == [5]


def test_gathers_with_more_than_one_index_per_row_are_left_alone():
    x, idx = ember.randn(4, 5), ember.tensor([[1, 2], [0, 0], [4, 3], [2, 2]])
    g = _trace(lambda x, i: x.gather(1, i), x, idx)
    assert onehot(g) == 0 and _names(g) == ["gather"]
    c = ember.compile(lambda x, i: x.gather(1, i))
    assert np.array_equal(c(x, idx).numpy(), x.gather(1, idx).numpy())


@pytest.mark.parametrize("dim", [0, 1])
def test_compiled_gather_and_its_backward_equal_eager(dim):
    ember.manual_seed(0)
    x = ember.randn(6, 7, requires_grad=True)
    idx = ember.tensor(np.random.default_rng(dim).integers(0, x.shape[dim], (1, 7) if dim == 0 else (6, 1)))
    w = ember.randn(*idx.shape)

    def step(x, idx):
        x.grad = None
        out = x.gather(dim, idx)
        (out * w).sum().backward()
        return out.detach(), x.grad

    compiled = ember.compile(step)
    for _ in range(2):  # trace, then replay
        out_c, grad_c = compiled(x, idx)
    out_e, grad_e = step(x, idx)
    assert np.array_equal(out_c.numpy(), out_e.numpy())
    assert np.array_equal(grad_c.numpy(), grad_e.numpy())
    names = [n for group in _groups(compiled) for n in group]
    assert "gather" not in names and "scatter_add" not in names


def test_cross_entropy_pick_joins_the_log_softmax_row_kernel_and_trains_as_eager():
    def make():
        ember.manual_seed(1)
        model = nn.Linear(8, 5)
        return model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    x = ember.randn(16, 8)
    y = ember.tensor(np.random.default_rng(0).integers(0, 5, 16))
    losses = {}
    for kind in ("eager", "compiled"):
        model, opt = make()

        def step(x, y, model=model, opt=opt):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.detach()
        run = ember.compile(step) if kind == "compiled" else step
        losses[kind] = [float(run(x, y)) for _ in range(4)]
        losses[kind + " weight"] = model.weight.detach().numpy().copy()
        if kind == "compiled":
            groups = _groups(run)
    np.testing.assert_allclose(losses["compiled"], losses["eager"], rtol=1e-6)
    np.testing.assert_allclose(losses["compiled weight"], losses["eager weight"], rtol=1e-6, atol=1e-7)
    row = [grp for grp in groups if "amax" in grp]  # log-softmax: max, exp-sum, log, then the pick
    assert len(row) == 1 and row[0][-3:] == ["eq", "where", "sum"]
    assert not any("gather" in grp or "scatter_add" in grp for grp in groups)


def test_an_index_out_of_range_at_replay_raises_eagers_error():
    x = ember.randn(3, 4)
    c = ember.compile(lambda x, i: x.gather(1, i))
    c(x, ember.tensor([[0], [3], [1]]))
    with pytest.raises(IndexingError, match="index out of range"):
        c(x, ember.tensor([[0], [4], [1]]))
    with pytest.raises(IndexingError, match="index out of range"):
        c(x, ember.tensor([[0], [-1], [1]]))
    ok = ember.tensor([[2], [2], [0]])
    assert np.array_equal(c(x, ok).numpy(), x.gather(1, ok).numpy())
    ce = ember.compile(lambda x, t: F.cross_entropy(x, t))
    ce(x, ember.tensor([0, 1, 2]))
    with pytest.raises(IndexingError, match="class index 4"):
        ce(x, ember.tensor([0, 4, 2]))


def test_an_embedding_lookup_is_a_row_gather_kernel_behind_its_range_guard():
    ember.manual_seed(0)
    emb = nn.Embedding(10, 6)

    def f(i):
        with ember.no_grad():
            return emb(i) * 2

    c = ember.compile(f)
    for idx in ([[1, 2, 3], [9, 0, 4]], [[5, 5, 5], [0, 9, 1]]):
        i = ember.tensor(idx)
        assert np.array_equal(c(i).numpy(), f(i).numpy())
    assert ["getitem"] in _groups(c)
    with pytest.raises(IndexingError, match="out of range"):
        c(ember.tensor([[1, 2, 3], [9, 0, 10]]))


def test_an_unguarded_array_index_stays_with_numpy():
    table = ember.randn(5, 3)
    c = ember.compile(lambda t, i: t[i] + 1)
    i = ember.tensor([4, -1, 0])  # negative: counts from the end, as NumPy does
    assert np.array_equal(c(table, i).numpy(), (table[i] + 1).numpy())
    assert ["getitem"] not in _groups(c)


def test_open_elementwise_groups_read_by_one_node_become_one_kernel():
    c = ember.compile(lambda x: ((x < 0) | (x > 1)).any())
    x = ember.randn(64)
    assert bool(c(x)) == bool(((x < 0) | (x > 1)).any())
    assert _groups(c) == [["lt", "gt", "bitwise_or", "any"]]


def test_a_basic_slice_of_a_fresh_buffer_is_a_view_step():
    c = ember.compile(lambda x: (x @ x)[:, 1:3] * 2)
    x = ember.randn(4, 4)
    assert np.array_equal(c(x).numpy(), ((x @ x)[:, 1:3] * 2).numpy())
    plan = next(iter(c.entries.values())).plan
    assert "getitem" in [s.__name__ for s in plan.steps]
