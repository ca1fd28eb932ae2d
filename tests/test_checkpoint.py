"""Activation checkpointing: identical gradients to the plain run (dropout included), less memory
held between forward and backward, and the edge cases of what a block may read or return."""

import tracemalloc

import numpy as np
import pytest
import torch

import ember
from ember.autograd import saved_tensor_bytes

D, B, DEPTH = 32, 8, 4


def make_params(seed=0, dtype=ember.float64):
    g = ember.Generator(seed)
    return [(ember.randn(D, 4 * D, generator=g, dtype=dtype).mul(0.2).requires_grad_(),
             ember.zeros(4 * D, dtype=dtype, requires_grad=True),
             ember.randn(4 * D, D, generator=g, dtype=dtype).mul(0.1).requires_grad_())
            for _ in range(DEPTH)]


def dropout(h, p=0.25):
    keep = (ember.rand(*h.shape, dtype=h.dtype) > p).to(h.dtype)
    return h * keep / (1 - p)


def mlp_block(h, w1, b1, w2):
    return h + dropout((h @ w1 + b1).relu()) @ w2


def run(params, x, ckpt, closure=False, seed=5):
    """Forward (a residual MLP stack with dropout) and backward; returns loss, bytes held, grads."""
    ember.manual_seed(seed)
    for p in [q for block in params for q in block] + [x]:
        p.grad = None
    h = x
    for w1, b1, w2 in params:
        if not ckpt:
            h = mlp_block(h, w1, b1, w2)
        elif closure:  # parameters captured by the block, not passed
            h = ember.checkpoint(lambda t, w1=w1, b1=b1, w2=w2: mlp_block(t, w1, b1, w2), h)
        else:
            h = ember.checkpoint(mlp_block, h, w1, b1, w2)
    loss = (h * h).mean()
    held = saved_tensor_bytes(loss)
    loss.backward()
    after = ember.rand(3).numpy()  # the stream continues exactly as in the plain run
    grads = [p.grad.numpy().copy() for block in params for p in block]
    xg = x.grad.numpy().copy() if x.grad is not None else None
    return loss.item(), held, grads, xg, after


@pytest.mark.parametrize("closure", [False, True])
def test_checkpoint_gives_identical_gradients_and_holds_less(closure):
    params = make_params()
    x = ember.randn(B, D, dtype=ember.float64, requires_grad=True)
    loss0, held0, grads0, xg0, after0 = run(params, x, ckpt=False)
    loss1, held1, grads1, xg1, after1 = run(params, x, ckpt=True, closure=closure)
    assert loss0 == loss1
    for a, b in zip(grads0, grads1):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(xg0, xg1)
    np.testing.assert_array_equal(after0, after1)
    # plain: every block keeps its hidden activations (B x 4D several times); checkpointed: only the
    # block inputs and the final output (B x D each, float64), plus the loss's scalars
    assert held1 <= (DEPTH + 1) * B * D * 8 + 64
    assert held1 * 4 < held0


def test_dropout_masks_differ_without_rng_preservation():
    """Negative control: without restoring the random state the recomputation draws new masks."""
    params = make_params()
    x = ember.randn(B, D, dtype=ember.float64, requires_grad=True)
    _, _, grads0, _, _ = run(params, x, ckpt=False)
    ember.manual_seed(5)
    h = x
    for w1, b1, w2 in params:
        h = ember.checkpoint(mlp_block, h, w1, b1, w2, preserve_rng_state=False)
    (h * h).mean().backward()
    assert not np.allclose(grads0[0], params[0][0].grad.numpy())


def test_parameters_get_grads_when_input_does_not_require_grad():
    params = make_params()
    x = ember.randn(B, D, dtype=ember.float64)  # data: no grad (torch's reentrant variant fails here)
    _, _, grads0, _, _ = run(params, x, ckpt=False)
    _, _, grads1, xg, _ = run(params, x, ckpt=True, closure=True)
    assert xg is None
    for a, b in zip(grads0, grads1):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_matches_torch_gradients():
    params = make_params()
    x = ember.randn(B, D, dtype=ember.float64, requires_grad=True)
    tparams = [[torch.tensor(p.detach().numpy(), requires_grad=True) for p in blk] for blk in params]
    tx = torch.tensor(x.detach().numpy(), requires_grad=True)

    def block(lib, h, w1, b1, w2):
        return h + (h @ w1 + b1).relu() @ w2

    h, th = x, tx
    for (w1, b1, w2), (tw1, tb1, tw2) in zip(params, tparams):
        h = ember.checkpoint(lambda *a: block(ember, *a), h, w1, b1, w2)
        th = torch.utils.checkpoint.checkpoint(lambda *a: block(torch, *a), th, tw1, tb1, tw2,
                                               use_reentrant=False)
    (h * h).mean().backward()
    (th * th).mean().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for blk, tblk in zip(params, tparams):
        for p, tp in zip(blk, tblk):
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_autograd_grad_through_checkpoint_wrt_closure_parameters():
    params = make_params()
    x = ember.randn(B, D, dtype=ember.float64)
    flat = [p for blk in params for p in blk]

    def forward(ckpt):
        ember.manual_seed(1)
        h = x
        for w1, b1, w2 in params:
            f = (lambda t, w1=w1, b1=b1, w2=w2: mlp_block(t, w1, b1, w2))
            h = ember.checkpoint(f, h) if ckpt else f(h)
        return (h * h).sum()

    g0 = ember.autograd.grad(forward(False), flat)
    g1 = ember.autograd.grad(forward(True), flat)
    for a, b in zip(g0, g1):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert all(p.grad is None for p in flat)  # grad() does not accumulate


def test_weight_shared_between_checkpointed_blocks():
    w = ember.tensor(np.random.default_rng(0).normal(size=(6, 6)) * 0.3, requires_grad=True)
    x = ember.tensor(np.random.default_rng(1).normal(size=(2, 6)), requires_grad=True)

    def block(h):
        return (h @ w).tanh() + h

    grads = []
    for ckpt in (False, True):
        w.grad = x.grad = None
        h = x
        for _ in range(3):
            h = ember.checkpoint(block, h) if ckpt else block(h)
        h.sum().backward()
        grads.append((w.grad.numpy().copy(), x.grad.numpy().copy()))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-12)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-12)


def test_block_reading_an_outside_activation():
    x = ember.tensor([1.0, 2.0], dtype=ember.float64, requires_grad=True)
    grads = []
    for ckpt in (False, True):
        x.grad = None
        outside = x.exp()  # a non-leaf the block closes over

        def block(h, outside=outside):
            return h * outside

        y = ember.checkpoint(block, x * 3) if ckpt else block(x * 3)
        y.sum().backward()
        grads.append(x.grad.numpy().copy())
    np.testing.assert_allclose(grads[0], grads[1])


def test_tuple_outputs_one_unused_and_non_tensor():
    x = ember.tensor([1.0, 2.0], requires_grad=True)

    def block(h):
        return h.exp(), h * 2, "tag"

    a, b, tag = ember.checkpoint(block, x)
    assert tag == "tag" and a.requires_grad and b.requires_grad
    a.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([1.0, 2.0]), rtol=1e-6)


def test_nested_checkpoint():
    x = ember.tensor([0.5, -1.0], dtype=ember.float64, requires_grad=True)

    def inner(h):
        return h.sin() * h

    def outer(h):
        return ember.checkpoint(inner, h.exp()) + h

    ember.checkpoint(outer, x).sum().backward()
    xs = x.detach().numpy()
    e = np.exp(xs)
    np.testing.assert_allclose(x.grad.numpy(), (np.cos(e) * e + np.sin(e)) * e + 1)


def test_second_backward_needs_retain_graph():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = ember.checkpoint(lambda h: (h * h).sum(), x)
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    z = ember.checkpoint(lambda h: (h * h).sum(), x)
    z.backward()
    with pytest.raises(ember.AutogradError, match="second time"):
        z.backward()


def test_checkpoint_under_no_grad_just_runs():
    x = ember.tensor([1.0], requires_grad=True)
    with ember.no_grad():
        y = ember.checkpoint(lambda h: h * 2, x)
    assert not y.requires_grad and y.item() == 2.0


def test_post_accumulate_hooks_fire_once_per_parameter_with_checkpoint():
    params = make_params()
    calls = []
    for i, p in enumerate(p for blk in params for p in blk):
        p.register_post_accumulate_grad_hook(lambda t, i=i: calls.append(i))
    run(params, ember.randn(B, D, dtype=ember.float64), ckpt=True)
    assert sorted(calls) == list(range(3 * DEPTH))
    assert calls[0] >= 3 * (DEPTH - 1)  # the last block's parameters finish first


def test_checkpoint_holds_less_memory_measured_by_tracemalloc():
    params = make_params(dtype=ember.float32)
    x = ember.randn(64, D)

    def held(ckpt):
        ember.manual_seed(0)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        h = x
        for w1, b1, w2 in params:
            h = ember.checkpoint(mlp_block, h, w1, b1, w2) if ckpt else mlp_block(h, w1, b1, w2)
        loss = h.sum()
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        loss.backward()
        return used

    plain, ckpt = held(False), held(True)
    activations = 64 * 4 * D * 4  # one hidden layer's activation in bytes
    assert plain - ckpt > DEPTH * activations, (plain, ckpt)


def test_recompute_runs_under_the_forwards_autocast_setting():
    from ember import amp
    x = ember.randn(4, 8, requires_grad=True)
    w = ember.randn(8, 8, requires_grad=True)
    grads = []
    for ckpt in (False, True):
        x.grad = w.grad = None
        with amp.autocast(ember.bfloat16):
            y = ember.checkpoint(lambda a, b: (a @ b).relu(), x, w) if ckpt else (x @ w).relu()
        assert y.dtype is ember.bfloat16
        y.float().sum().backward()  # backward outside autocast, as training loops do
        grads.append((x.grad.numpy().copy(), w.grad.numpy().copy()))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])


def test_double_backward_through_checkpoint_matches_plain():
    x = ember.tensor([0.3, -0.7, 1.1], dtype=ember.float64, requires_grad=True)

    def block(h):
        return (h.tanh() * h).sin()

    res = []
    for ckpt in (False, True):
        y = (ember.checkpoint(block, x) if ckpt else block(x)).sum()
        (g,) = ember.autograd.grad(y, x, create_graph=True)
        (gg,) = ember.autograd.grad(g.sum(), x)
        res.append((g.detach().numpy(), gg.numpy()))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-12)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-12)


def test_checkpointed_nn_modules_with_dropout_match_plain_run():
    from ember import nn
    ember.manual_seed(0)
    blocks = [nn.Sequential(nn.LayerNorm(D), nn.Linear(D, 4 * D), nn.GELU(), nn.Dropout(0.2),
                            nn.Linear(4 * D, D)) for _ in range(3)]
    params = [p for b in blocks for p in b.parameters()]
    x = ember.randn(B, D)
    results = []
    for ckpt in (False, True):
        for p in params:
            p.grad = None
        ember.manual_seed(11)
        h = x
        for blk in blocks:
            h = h + (ember.checkpoint(blk, h) if ckpt else blk(h))
        loss = (h * h).mean()
        held = saved_tensor_bytes(loss)
        loss.backward()
        results.append((loss.item(), held, [p.grad.numpy().copy() for p in params]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][2], results[1][2]):
        np.testing.assert_array_equal(a, b)
    assert results[1][1] * 3 < results[0][1]
