"""Optimizers against PyTorch (20-step trajectories) and, for LARS/LAMB, float64 NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember import optim

STEPS = 20
SHAPES = [(4, 3), (3,), (2, 2, 2)]


def _inits(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1.5, 1.5, size=s) for s in SHAPES]


def _coefs(seed=1):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.2, 2.0, size=s) for s in SHAPES]


def _loss(lib, params, coefs):
    """A quadratic plus a sine: curved enough that every optimizer takes different steps."""
    total = 0
    for p, c in zip(params, coefs):
        total = total + (c * p * p).sum() * 0.5 + (p * 3).sin().sum()
    return total


def _groups(params, group_opts):
    """One group per option dict in group_opts; params are dealt out in order (group 0 gets the rest)."""
    if group_opts is None:
        return params
    n = len(group_opts)
    return [dict(params=params[i::n], **o) for i, o in enumerate(group_opts)]


def _grad_sequence(steps=STEPS, seed=2):
    """Fixed gradients, independent of the parameters: isolates the update rule from the model."""
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=s) * rng.uniform(0.1, 3.0) for s in SHAPES] for _ in range(steps)]


def _run(lib, cls, kwargs, group_opts=None, steps=STEPS, dtype="float32", fixed_grads=False):
    """Run `steps` updates; gradients come from _loss, or from _grad_sequence when fixed_grads."""
    inits, coefs = _inits(), _coefs()
    gseq = _grad_sequence(steps) if fixed_grads else None
    if lib is ember:
        params = [ember.tensor(a).to(dtype).requires_grad_() for a in inits]
        cs = [ember.tensor(c).to(dtype) for c in coefs]
    else:
        params = [torch.tensor(a, dtype=getattr(torch, dtype), requires_grad=True) for a in inits]
        cs = [torch.tensor(c, dtype=getattr(torch, dtype)) for c in coefs]
    opt = cls(_groups(params, group_opts), **kwargs)
    traj = []
    for t in range(steps):
        opt.zero_grad()
        if fixed_grads:
            for p, g in zip(params, gseq[t]):
                p.grad = (ember.tensor(g).to(dtype) if lib is ember else
                          torch.tensor(g, dtype=getattr(torch, dtype)))
        else:
            _loss(lib, params, cs).backward()
        opt.step()
        traj.append([p.detach().numpy().astype(np.float64).copy() for p in params])
    return traj, opt, params


def _assert_traj(ours, ref, rtol=1e-5, atol=1e-6):
    for step, (a, b) in enumerate(zip(ours, ref)):
        for i, (x, y) in enumerate(zip(a, b)):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"step {step + 1}, param {i}")


TORCH_CASES = [
    ("SGD", dict(lr=0.05), None),
    ("SGD", dict(lr=0.05, momentum=0.9), None),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1), None),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), None),
    ("SGD", dict(lr=0.05, momentum=0.8, maximize=True), None),
    ("SGD", dict(lr=0.05, momentum=0.9), [{}, dict(lr=0.01, momentum=0.5, nesterov=True)]),
    ("Adam", dict(lr=0.05), None),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1), None),
    ("Adam", dict(lr=0.05, amsgrad=True), None),
    ("Adam", dict(lr=0.05, maximize=True, eps=1e-6), None),
    ("Adam", dict(lr=0.05), [{}, dict(lr=0.01, betas=(0.5, 0.9), amsgrad=True, weight_decay=0.2)]),
    ("AdamW", dict(lr=0.05), None),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True), None),
    ("AdamW", dict(lr=0.05), [dict(weight_decay=0.0), dict(weight_decay=0.5, lr=0.1)]),
    ("RMSprop", dict(lr=0.01), None),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.9), None),
    ("RMSprop", dict(lr=0.01, centered=True, weight_decay=0.1), None),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, eps=1e-4), None),
    ("RMSprop", dict(lr=0.01), [{}, dict(centered=True, momentum=0.7, lr=0.005)]),
    ("Adagrad", dict(lr=0.1), None),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5), None),
    ("Adagrad", dict(lr=0.1, maximize=True), [{}, dict(lr=0.3, lr_decay=0.1)]),
]


@pytest.mark.parametrize("name,kwargs,groups", TORCH_CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(TORCH_CASES)])
def test_float32_trajectory_matches_torch(name, kwargs, groups):
    # the same gradient sequence for both: float32 rounding differences in a model's gradient
    # would otherwise grow along a momentum trajectory and hide what the update rule does
    ours, _, _ = _run(ember, getattr(optim, name), kwargs, groups, fixed_grads=True)
    ref, _, _ = _run(torch, getattr(torch.optim, name), kwargs, groups, fixed_grads=True)
    _assert_traj(ours, ref)


@pytest.mark.parametrize("name,kwargs,groups", TORCH_CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(TORCH_CASES)])
def test_float64_trajectory_on_a_loss_matches_torch(name, kwargs, groups):
    # gradients from each library's autograd of the same loss, at the current parameters
    ours, _, _ = _run(ember, getattr(optim, name), kwargs, groups, dtype="float64")
    ref, _, _ = _run(torch, getattr(torch.optim, name), kwargs, groups, dtype="float64")
    _assert_traj(ours, ref, rtol=1e-9, atol=1e-12)


def test_defaults_match_torch():
    p = [torch.zeros(1, requires_grad=True)]
    q = [ember.zeros(1, requires_grad=True)]
    for name in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad"):
        theirs = getattr(torch.optim, name)(p).defaults
        ours = getattr(optim, name)(q).defaults
        for k, v in ours.items():
            if k in theirs:
                assert theirs[k] == v, (name, k, theirs[k], v)


# --- LARS and LAMB: float64 NumPy references of the documented formulas ------------------------


def _np_grad(p, c):
    return c * p + 3 * np.cos(3 * p)


def _lars_reference(group_opts, steps=STEPS):
    params, coefs = _inits(), _coefs()
    groups = [params[i::len(group_opts)] for i in range(len(group_opts))]
    cgroups = [coefs[i::len(group_opts)] for i in range(len(group_opts))]
    bufs, traj = {}, []
    for _ in range(steps):
        for gi, o in enumerate(group_opts):
            for j, (p, c) in enumerate(zip(groups[gi], cgroups[gi])):
                g = _np_grad(p, c)
                if not (o["exclude_1d"] and p.ndim <= 1):
                    wn, gn = np.linalg.norm(p), np.linalg.norm(g)
                    ratio = o["trust_coefficient"] * wn / (gn + o["weight_decay"] * wn + o["eps"])
                    ratio = ratio if wn > 0 and gn > 0 else 1.0
                    g = (g + o["weight_decay"] * p) * ratio
                key = (gi, j)
                bufs[key] = g.copy() if key not in bufs else o["momentum"] * bufs[key] + g
                p -= o["lr"] * bufs[key]
        traj.append([a.copy() for a in params])
    return traj


def _lamb_reference(group_opts, steps=STEPS):
    params, coefs = _inits(), _coefs()
    groups = [params[i::len(group_opts)] for i in range(len(group_opts))]
    cgroups = [coefs[i::len(group_opts)] for i in range(len(group_opts))]
    ms, vs, traj = {}, {}, []
    for t in range(1, steps + 1):
        for gi, o in enumerate(group_opts):
            b1, b2 = o["betas"]
            for j, (p, c) in enumerate(zip(groups[gi], cgroups[gi])):
                g = _np_grad(p, c)
                key = (gi, j)
                ms[key] = b1 * ms.get(key, 0) + (1 - b1) * g
                vs[key] = b2 * vs.get(key, 0) + (1 - b2) * g * g
                bc1, bc2 = (1 - b1 ** t, 1 - b2 ** t) if o["bias_correction"] else (1, 1)
                u = (ms[key] / bc1) / (np.sqrt(vs[key] / bc2) + o["eps"]) + o["weight_decay"] * p
                wn, un = np.linalg.norm(p), np.linalg.norm(u)
                ratio = wn / un if wn > 0 and un > 0 else 1.0
                p -= o["lr"] * ratio * u
        traj.append([a.copy() for a in params])
    return traj


LARS_DEFAULTS = dict(lr=0.1, momentum=0.9, weight_decay=0.0, trust_coefficient=1e-3, eps=1e-8,
                     exclude_1d=False)


@pytest.mark.parametrize("groups", [
    [dict(LARS_DEFAULTS, lr=0.5, trust_coefficient=0.02)],
    [dict(LARS_DEFAULTS, lr=2.0, weight_decay=0.1, trust_coefficient=0.01, momentum=0.5)],
    [dict(LARS_DEFAULTS, lr=1.0, trust_coefficient=0.01, exclude_1d=True, weight_decay=0.05),
     dict(LARS_DEFAULTS, lr=0.2, trust_coefficient=0.05, momentum=0.0, exclude_1d=True)],
])
def test_lars_matches_numpy_reference(groups):
    ours, _, _ = _run(ember, optim.LARS, {}, [dict(g) for g in groups], dtype="float64")
    _assert_traj(ours, _lars_reference(groups), rtol=1e-10, atol=1e-12)


LAMB_DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, bias_correction=True)


@pytest.mark.parametrize("groups", [
    [dict(LAMB_DEFAULTS, lr=0.05)],
    [dict(LAMB_DEFAULTS, lr=0.05, weight_decay=0.1, betas=(0.8, 0.95))],
    [dict(LAMB_DEFAULTS, lr=0.05, bias_correction=False),
     dict(LAMB_DEFAULTS, lr=0.02, weight_decay=0.3, eps=1e-3)],
])
def test_lamb_matches_numpy_reference(groups):
    ours, _, _ = _run(ember, optim.LAMB, {}, [dict(g) for g in groups], dtype="float64")
    _assert_traj(ours, _lamb_reference(groups), rtol=1e-10, atol=1e-12)


def test_lars_and_lamb_in_float32_stay_close_to_reference():
    ours, _, _ = _run(ember, optim.LAMB, {}, [dict(LAMB_DEFAULTS, lr=0.05)])
    _assert_traj(ours, _lamb_reference([dict(LAMB_DEFAULTS, lr=0.05)]), rtol=1e-4, atol=1e-5)
    g = [dict(LARS_DEFAULTS, lr=0.5, trust_coefficient=0.02)]
    ours, _, _ = _run(ember, optim.LARS, {}, [dict(x) for x in g])
    _assert_traj(ours, _lars_reference(g), rtol=1e-4, atol=1e-5)


# --- state_dict: torch's layout and exact resume ---------------------------------------------------

RESUME_CASES = [
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True), None),
    (optim.Adam, dict(lr=0.05, amsgrad=True), [{}, dict(lr=0.01)]),
    (optim.AdamW, dict(lr=0.05, weight_decay=0.1), None),
    (optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.5), None),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.01), None),
    (optim.LARS, dict(lr=0.5, trust_coefficient=0.02), None),
    (optim.LAMB, dict(lr=0.05, weight_decay=0.01), None),
]


@pytest.mark.parametrize("cls,kwargs,groups", RESUME_CASES, ids=[c[0].__name__ for c in RESUME_CASES])
def test_state_dict_resume_is_exact(cls, kwargs, groups):
    full, _, _ = _run(ember, cls, kwargs, groups, steps=20)
    _, opt, params = _run(ember, cls, kwargs, groups, steps=10)
    sd = opt.state_dict()
    # a fresh run: new parameter tensors holding the same values, a new optimizer, the loaded state
    params2 = [ember.tensor(p.detach().numpy().copy()).requires_grad_() for p in params]
    opt2 = cls(_groups(params2, groups), **kwargs)
    opt2.load_state_dict(sd)
    cs = [ember.tensor(c).to("float32") for c in _coefs()]
    for step in range(10, 20):
        opt.zero_grad()  # the first optimizer keeps going: it must not disturb the loaded copy
        _loss(ember, params, cs).backward()
        opt.step()
        opt2.zero_grad()
        _loss(ember, params2, cs).backward()
        opt2.step()
        for a, b in zip(params2, full[step]):
            np.testing.assert_array_equal(a.detach().numpy(), b.astype(np.float32))


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(momentum=0.9)), ("Adam", dict(amsgrad=True)),
                                         ("RMSprop", dict(momentum=0.5, centered=True)), ("Adagrad", {})])
def test_state_dict_layout_matches_torch(name, kwargs):
    groups = [{}, dict(lr=0.01)]
    _, ours, _ = _run(ember, getattr(optim, name), kwargs, groups, steps=2)
    _, theirs, _ = _run(torch, getattr(torch.optim, name), kwargs, groups, steps=2)
    a, b = ours.state_dict(), theirs.state_dict()
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        assert a["state"][k].keys() == b["state"][k].keys()
        for name_, v in a["state"][k].items():
            if name_ == "step":
                assert v == int(b["state"][k][name_].item())
            else:
                np.testing.assert_allclose(v.numpy(), b["state"][k][name_].numpy(), rtol=1e-5, atol=1e-6)
    assert [g["params"] for g in a["param_groups"]] == [g["params"] for g in b["param_groups"]]
    for ga, gb in zip(a["param_groups"], b["param_groups"]):
        assert ga["lr"] == gb["lr"]


def test_load_state_dict_accepts_torch_style_tensor_step():
    _, opt, params = _run(ember, optim.Adam, dict(lr=0.05), steps=3)
    sd = opt.state_dict()
    sd["state"] = {k: dict(v, step=ember.tensor(float(v["step"]))) for k, v in sd["state"].items()}
    opt2 = optim.Adam(params, lr=0.05)
    opt2.load_state_dict(sd)
    assert opt2.state[params[0]]["step"] == 3


def test_load_state_dict_rejects_mismatched_groups():
    _, opt, params = _run(ember, optim.SGD, dict(lr=0.1, momentum=0.9), steps=1)
    other = optim.SGD(params[:2], lr=0.1)
    with pytest.raises(ValueError, match="group 0 has 2 parameters"):
        other.load_state_dict(opt.state_dict())


# --- the base class ------------------------------------------------------------------------------


def test_zero_grad_set_to_none_and_zero():
    p = ember.randn(3, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    (p * p).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and not p.grad.numpy().any()
    opt.zero_grad()
    assert p.grad is None


def test_params_without_grad_are_skipped_and_keep_no_state():
    a, b = ember.randn(3, requires_grad=True), ember.randn(3, requires_grad=True)
    before = b.detach().numpy().copy()
    opt = optim.Adam([a, b], lr=0.1)
    (a * a).sum().backward()
    opt.step()
    np.testing.assert_array_equal(b.detach().numpy(), before)
    assert b not in opt.state and opt.state[a]["step"] == 1


def test_add_param_group_uses_defaults_and_rejects_duplicates():
    a, b = ember.randn(2, requires_grad=True), ember.randn(2, requires_grad=True)
    opt = optim.SGD([a], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["momentum"] == 0.9
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [a]})


def test_constructor_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(ember.randn(2, requires_grad=True))
    x = ember.randn(2, requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([x * 2])
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([x], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta"):
        optim.Adam([x], betas=(1.0, 0.9))


def test_step_with_closure_returns_loss():
    p = ember.tensor([1.0, -2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss
    loss = opt.step(closure)
    assert float(loss) == pytest.approx(5.0)
    np.testing.assert_allclose(p.detach().numpy(), [0.8, -1.6], rtol=1e-6)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_zero_learning_rate_matches_torch(name):
    # a warmup that starts at lr 0: nothing moves, but the state advances as in PyTorch
    ours, opt, _ = _run(ember, getattr(optim, name), dict(lr=0.0), fixed_grads=True, steps=3)
    ref, topt, _ = _run(torch, getattr(torch.optim, name), dict(lr=0.0), fixed_grads=True, steps=3)
    _assert_traj(ours, ref)
    assert np.isfinite(np.concatenate([a.ravel() for a in ours[-1]])).all()
