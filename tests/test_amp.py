"""Mixed precision: autocast's dtype rules and training accuracy; GradScaler against torch.amp.GradScaler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.nn.functional as F
from ember import amp, optim
from ember.nn.utils import clip_grad_norm_

LOW = [ember.float16, ember.bfloat16]


# --- autocast ------------------------------------------------------------------------------------


@pytest.mark.parametrize("low", LOW)
def test_matmul_runs_in_the_low_dtype_and_grads_come_back_float32(low):
    a = ember.randn(4, 5, requires_grad=True)
    b = ember.randn(5, 3, requires_grad=True)
    with amp.autocast(dtype=low):
        assert amp.is_autocast_enabled() and amp.get_autocast_dtype() is low
        y = a @ b
    assert y.dtype is low and not amp.is_autocast_enabled()
    y.float().sum().backward()
    assert a.grad.dtype is ember.float32 and b.grad.dtype is ember.float32
    # the low-precision product is the float32 one rounded (it accumulates in float32)
    ref = (a.detach().to(low).float() @ b.detach().to(low).float()).to(low).float().numpy()
    np.testing.assert_array_equal(y.float().detach().numpy(), ref)


def test_autocast_leaves_float64_alone_and_can_be_disabled_inside():
    x64, x = ember.randn(3, 3, dtype=ember.float64), ember.randn(3, 3)
    with amp.autocast(ember.float16):
        assert (x64 @ x64).dtype is ember.float64
        with amp.autocast(ember.float16, enabled=False):
            assert (x @ x).dtype is ember.float32
        assert (x @ x).dtype is ember.float16
    assert (x @ x).dtype is ember.float32


def test_autocast_is_per_thread():
    import threading
    x, seen = ember.randn(2, 2), []
    with amp.autocast(dtype=ember.float16):
        t = threading.Thread(target=lambda: seen.append((x @ x).dtype))
        t.start()
        t.join()
        assert (x @ x).dtype is ember.float16
    assert seen == [ember.float32]


def test_autocast_as_decorator_and_argument_forms():
    @amp.autocast(dtype=ember.bfloat16)
    def f(a):
        return a @ a
    assert f(ember.randn(2, 2)).dtype is ember.bfloat16
    assert amp.autocast("cpu").fast_dtype is ember.bfloat16
    assert amp.autocast("cuda").fast_dtype is ember.float16
    assert amp.autocast("cpu", dtype="float16").fast_dtype is ember.float16
    with pytest.raises(ember.DTypeError, match="float16 or ember.bfloat16"):
        amp.autocast(dtype=ember.float32)


@pytest.mark.parametrize("low", LOW)
def test_linear_and_conv_are_low_precision(low):
    x, w, b = ember.randn(8, 6), ember.randn(4, 6), ember.randn(4)
    img, k, kb = ember.randn(2, 3, 6, 6), ember.randn(5, 3, 3, 3), ember.randn(5)
    with amp.autocast(dtype=low):
        assert F.linear(x, w, b).dtype is low
        assert F.conv2d(img, k, kb, padding=1).dtype is low


@pytest.mark.parametrize("low", LOW)
def test_softmax_norms_and_losses_run_in_float32(low):
    x = ember.randn(6, 5).to(low)
    target = ember.tensor([0, 1, 2, 3, 4, 0])
    with amp.autocast(dtype=low):
        h = x @ ember.randn(5, 5)
        assert h.dtype is low
        assert F.softmax(h, dim=-1).dtype is ember.float32
        assert F.log_softmax(h, dim=-1).dtype is ember.float32
        assert F.layer_norm(h, (5,)).dtype is ember.float32
        assert F.rms_norm(h, (5,)).dtype is ember.float32
        assert F.cross_entropy(h, target).dtype is ember.float32
        assert F.mse_loss(h, ember.zeros(6, 5)).dtype is ember.float32
    # and the float32 result is what float32 math on the low-precision values gives
    with amp.autocast(dtype=low):
        got = F.log_softmax(h, dim=-1).numpy()
    np.testing.assert_allclose(got, F.log_softmax(h.float(), dim=-1).numpy(), rtol=1e-6)


def _mlp_final_loss(low, steps=50):
    ember.manual_seed(0)
    gen = np.random.default_rng(0)
    X = ember.tensor(gen.normal(size=(128, 16)).astype(np.float32))
    teacher = gen.normal(size=(16, 4))
    y = ember.tensor((gen.normal(size=(128, 16)) * 0.1 + X.numpy()) @ teacher).argmax(-1)
    params = [ember.randn(32, 16) * 0.25, ember.zeros(32), ember.randn(4, 32) * 0.18, ember.zeros(4)]
    params = [p.requires_grad_() for p in params]
    opt = optim.Adam(params, lr=1e-2)
    scaler = amp.GradScaler(enabled=low is ember.float16)
    for _ in range(steps):
        opt.zero_grad()
        with amp.autocast(dtype=low or ember.float16, enabled=low is not None):
            h = F.relu(F.linear(X, params[0], params[1]))
            loss = F.cross_entropy(F.linear(h, params[2], params[3]), y)
        assert loss.dtype is ember.float32
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    with ember.no_grad():
        h = F.relu(F.linear(X, params[0], params[1]))
        return F.cross_entropy(F.linear(h, params[2], params[3]), y).item()


def test_mlp_trained_under_autocast_ends_within_2_percent_of_float32():
    ref = _mlp_final_loss(None)
    assert ref < 0.7  # it did learn (chance is log 4 = 1.39)
    for low in LOW:
        got = _mlp_final_loss(low)
        assert abs(got - ref) <= 0.02 * ref, (low, got, ref)


# --- GradScaler ----------------------------------------------------------------------------------


def _scaler_run(lib, bad_steps, steps=16, unscale_first=False, **kw):
    """A fixed loss whose gradients are made inf/NaN on `bad_steps`; returns scales and parameters."""
    rng = np.random.default_rng(0)
    w0, c = rng.normal(size=5), rng.normal(size=(steps, 5))
    if lib is ember:
        w = ember.tensor(w0.astype(np.float32)).requires_grad_()
        opt = optim.SGD([w], lr=0.1, momentum=0.9)
        scaler = amp.GradScaler(**kw)
        cs = [ember.tensor(x.astype(np.float32)) for x in c]
    else:
        w = torch.tensor(w0, dtype=torch.float32, requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
        scaler = torch.amp.GradScaler("cpu", **kw)
        cs = [torch.tensor(x, dtype=torch.float32) for x in c]
    scales, ws = [], []
    for t in range(steps):
        opt.zero_grad()
        loss = (w * cs[t]).sum() + (w * w).sum() * 0.5
        scaler.scale(loss).backward()
        if t in bad_steps:
            w.grad[t % 5] = float("inf") if t % 2 else float("nan")
        if unscale_first:
            scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        ws.append(w.detach().numpy().astype(np.float64).copy())
    return scales, ws, scaler


@pytest.mark.parametrize("kw", [dict(init_scale=2.0 ** 4, growth_interval=3),
                                dict(init_scale=1000.0, growth_factor=3.0, backoff_factor=0.25,
                                     growth_interval=2),
                                dict()])
def test_scale_sequence_and_parameters_match_torch(kw):
    bad = {2, 5, 6, 11}
    ours, our_w, a = _scaler_run(ember, bad, **kw)
    theirs, their_w, b = _scaler_run(torch, bad, **kw)
    assert ours == theirs
    np.testing.assert_allclose(np.array(our_w), np.array(their_w), rtol=1e-6, atol=1e-7)
    assert a.state_dict() == b.state_dict()


def test_inf_grad_skips_the_step_and_backs_off():
    w = ember.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    scaler = amp.GradScaler(init_scale=8.0)
    scaler.scale((w * w).sum()).backward()
    w.grad[1] = float("inf")
    assert scaler.step(opt) is None
    np.testing.assert_array_equal(w.detach().numpy(), [1.0, 2.0])
    assert w not in opt.state  # the optimizer never ran
    scaler.update()
    assert scaler.get_scale() == 4.0


def test_unscale_then_clip_then_step_matches_torch():
    bad = {3}
    ours, our_w, _ = _scaler_run(ember, bad, unscale_first=True, init_scale=64.0, growth_interval=2)
    theirs, their_w, _ = _scaler_run(torch, bad, unscale_first=True, init_scale=64.0, growth_interval=2)
    assert ours == theirs
    np.testing.assert_allclose(np.array(our_w), np.array(their_w), rtol=1e-6, atol=1e-7)


def test_unscale_is_idempotent_and_gives_true_gradients():
    w = ember.tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    scaler = amp.GradScaler(init_scale=1024.0)
    scaler.scale((w * w).sum()).backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2048.0, -4096.0, 6144.0])
    scaler.unscale_(opt)
    scaler.unscale_(opt)  # second call: no further division
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, -4.0, 6.0])
    total = clip_grad_norm_([w], 1.0)
    assert total.item() == pytest.approx(np.sqrt(56.0))
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.step(opt)
    scaler.update()
    with pytest.raises(RuntimeError, match="no inf checks"):
        scaler.update()


def test_state_dict_round_trip_and_disabled_scaler():
    _, _, a = _scaler_run(ember, {1}, steps=6, init_scale=32.0, growth_interval=2)
    b = amp.GradScaler()
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict() and b.get_scale() == a.get_scale()
    off = amp.GradScaler(enabled=False)
    x = ember.tensor(3.0)
    assert off.scale(x) is x and off.get_scale() == 1.0 and off.state_dict() == {}
