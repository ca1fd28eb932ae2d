"""Learning-rate schedulers: the lr (and momentum) sequence over 30 steps equals PyTorch's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ember
from ember import optim
from ember.optim import lr_scheduler as S

STEPS = 30


def _opt(lib, name="SGD", **kw):
    if lib is ember:
        ps = [ember.zeros(2, requires_grad=True), ember.zeros(3, requires_grad=True)]
        cls = getattr(optim, name)
    else:
        ps = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
        cls = getattr(torch.optim, name)
    return cls([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.3}], lr=0.1, **kw)


def _build(lib, kind, opt):
    mod = S if lib is ember else torch.optim.lr_scheduler
    if kind == "step":
        return mod.StepLR(opt, step_size=4, gamma=0.5)
    if kind == "multistep":
        return mod.MultiStepLR(opt, milestones=[3, 7, 7, 20], gamma=0.3)
    if kind == "exponential":
        return mod.ExponentialLR(opt, gamma=0.9)
    if kind == "cosine":
        return mod.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)  # 30 steps: past T_max, oscillates
    if kind == "lambda":
        return mod.LambdaLR(opt, lr_lambda=lambda e: 1.0 / (1 + e) ** 0.5)
    if kind == "lambda_per_group":
        return mod.LambdaLR(opt, lr_lambda=[lambda e: 0.95 ** e, lambda e: min(1.0, (e + 1) / 5)])
    if kind == "linear":
        return mod.LinearLR(opt, start_factor=0.1, end_factor=0.9, total_iters=8)
    if kind == "warmup_cosine":
        warm = mod.LinearLR(opt, start_factor=0.01, total_iters=5)
        cos = mod.CosineAnnealingLR(opt, T_max=25, eta_min=1e-4)
        return mod.SequentialLR(opt, [warm, cos], milestones=[5])
    if kind == "three_schedulers":
        a = mod.ExponentialLR(opt, gamma=0.8)
        b = mod.StepLR(opt, step_size=3, gamma=0.5)
        c = mod.LinearLR(opt, start_factor=0.5, total_iters=4)
        return mod.SequentialLR(opt, [a, b, c], milestones=[6, 15])
    if kind == "constant":
        return mod.ConstantLR(opt, factor=0.25, total_iters=6)
    if kind == "polynomial":
        return mod.PolynomialLR(opt, total_iters=20, power=2.0)
    if kind == "warm_restarts":
        return mod.CosineAnnealingWarmRestarts(opt, T_0=4, T_mult=2, eta_min=0.01)
    if kind == "warmup_poly":
        return mod.SequentialLR(opt, [mod.ConstantLR(opt, factor=0.1, total_iters=3),
                                      mod.PolynomialLR(opt, total_iters=25, power=0.5)], milestones=[3])
    raise ValueError(kind)


KINDS = ["step", "multistep", "exponential", "cosine", "lambda", "lambda_per_group", "linear",
         "warmup_cosine", "three_schedulers", "constant", "polynomial", "warm_restarts", "warmup_poly"]


def _sequence(lib, build, name="SGD", steps=STEPS, **opt_kw):
    opt = _opt(lib, name, **opt_kw)
    sched = build(lib, opt)
    seq = [list(sched.get_last_lr())]
    moms = [_momenta(opt)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that optimizer.step() was never called
        for _ in range(steps):
            opt.step()
            sched.step()
            seq.append(list(sched.get_last_lr()))
            moms.append(_momenta(opt))
    seq = np.array(seq, dtype=np.float64)
    assert np.allclose(seq[-1], [g["lr"] for g in opt.param_groups])
    return seq, np.array(moms, dtype=np.float64)


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum", 0.0) for g in opt.param_groups]


@pytest.mark.parametrize("kind", KINDS)
def test_lr_sequence_matches_torch(kind):
    ours, _ = _sequence(ember, lambda lib, o: _build(lib, kind, o))
    theirs, _ = _sequence(torch, lambda lib, o: _build(lib, kind, o))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


ONE_CYCLE = [
    dict(max_lr=1.0, total_steps=STEPS),
    dict(max_lr=[0.5, 2.0], total_steps=STEPS, anneal_strategy="linear", pct_start=0.25),
    dict(max_lr=1.0, epochs=3, steps_per_epoch=10, three_phase=True, div_factor=10.0, final_div_factor=100.0),
    dict(max_lr=0.8, total_steps=STEPS, three_phase=True, anneal_strategy="linear", base_momentum=0.7),
    dict(max_lr=1.0, total_steps=STEPS, cycle_momentum=False),
]


@pytest.mark.parametrize("name,opt_kw", [("SGD", dict(momentum=0.9)), ("Adam", {})])
@pytest.mark.parametrize("i", range(len(ONE_CYCLE)))
def test_one_cycle_lr_and_momentum_match_torch(name, opt_kw, i):
    kw = ONE_CYCLE[i]

    def build(lib, o):
        mod = S if lib is ember else torch.optim.lr_scheduler
        return mod.OneCycleLR(o, **kw)
    ours, our_m = _sequence(ember, build, name, steps=STEPS - 1, **opt_kw)
    theirs, their_m = _sequence(torch, build, name, steps=STEPS - 1, **opt_kw)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(our_m, their_m, rtol=1e-12, atol=1e-15)


def test_one_cycle_refuses_to_step_past_total_steps():
    opt = _opt(ember, momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="total_steps is 3"):
        sched.step()


def test_one_cycle_needs_momentum_to_cycle_it():
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.OneCycleLR(_opt(ember, "Adagrad"), max_lr=1.0, total_steps=10)


@pytest.mark.parametrize("kind", ["cosine", "warmup_cosine", "multistep", "lambda"])
def test_state_dict_resumes_the_sequence(kind):
    full, _ = _sequence(ember, lambda lib, o: _build(lib, kind, o))
    opt = _opt(ember)
    sched = _build(ember, kind, opt)
    for _ in range(12):
        opt.step()
        sched.step()
    o_sd, s_sd = opt.state_dict(), sched.state_dict()
    opt2 = _opt(ember)
    sched2 = _build(ember, kind, opt2)
    opt2.load_state_dict(o_sd)
    sched2.load_state_dict(s_sd)
    rest = []
    for _ in range(STEPS - 12):
        opt2.step()
        sched2.step()
        rest.append(sched2.get_last_lr())
    np.testing.assert_array_equal(np.array(rest), full[13:])


def test_multistep_state_survives_a_json_round_trip():
    import json
    opt = _opt(ember)
    sched = _build(ember, "multistep", opt)
    for _ in range(5):
        sched.step()
    sd = json.loads(json.dumps(sched.state_dict()))  # milestone keys become strings
    opt2 = _opt(ember)
    opt2.load_state_dict(opt.state_dict())
    sched2 = _build(ember, "multistep", opt2)
    sched2.load_state_dict(sd)
    for _ in range(5):
        sched.step()
        sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr()
    sched2.step(8)
    sched.step(8)
    assert sched2.get_last_lr() == sched.get_last_lr()


@pytest.mark.parametrize("kind", ["step", "multistep", "exponential", "cosine", "linear", "constant",
                                  "polynomial", "warm_restarts"])
def test_step_with_epoch_uses_closed_form_like_torch(kind):
    out = []
    for lib in (ember, torch):
        opt = _opt(lib)
        sched = _build(lib, kind, opt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched.step(7)
            a = list(sched.get_last_lr())
            sched.step(3)
        out.append(a + list(sched.get_last_lr()))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12)


def test_resuming_with_last_epoch_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(_opt(ember), step_size=2, last_epoch=4)


def test_sequential_lr_checks_its_arguments():
    opt, other = _opt(ember), _opt(ember)
    a, b = S.StepLR(opt, 2), S.StepLR(other, 2)
    with pytest.raises(ValueError, match="another optimizer"):
        S.SequentialLR(opt, [a, b], milestones=[3])
    with pytest.raises(ValueError, match="milestones"):
        S.SequentialLR(opt, [a, S.StepLR(opt, 3)], milestones=[3, 5])


@pytest.mark.parametrize("kw", [dict(patience=2), dict(mode="max", factor=0.5, patience=1, cooldown=2),
                                dict(threshold=0.05, threshold_mode="abs", min_lr=[0.02, 0.05],
                                     patience=0),
                                dict(mode="max", threshold_mode="abs", threshold=0.1, patience=1,
                                     factor=0.3)])
def test_reduce_on_plateau_matches_torch(kw):
    rng = np.random.default_rng(0)
    metrics = np.concatenate([np.linspace(1.0, 0.5, 8), 0.5 + 0.02 * rng.normal(size=22)])
    out = []
    for lib in (ember, torch):
        opt = _opt(lib)
        mod = S if lib is ember else torch.optim.lr_scheduler
        sched = mod.ReduceLROnPlateau(opt, **kw)
        seq = []
        for m in metrics:
            sched.step(float(m))
            seq.append(list(sched.get_last_lr()))
        out.append(seq)
    assert out[0] == out[1]
    assert out[0][-1] != out[0][0]  # it did cut the rate
