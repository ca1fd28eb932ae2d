"""Test oracles: PyTorch parity (forward and backward) and float64 finite-difference gradient checks.

`check_op(fn, shapes)` runs `fn(lib, *tensors)` with lib = ember and lib = torch on the same
random inputs and compares outputs and input gradients. `gradcheck(fn, inputs)` compares
ember's analytic gradient of a random projection of fn's output with central differences.
"""

from __future__ import annotations

import numpy as np
import torch

import ember

TOL = {"float32": (1e-5, 1e-5), "float64": (1e-10, 1e-10), "float16": (2e-3, 2e-3), "bfloat16": (2e-2, 2e-2)}


def to_numpy(t) -> np.ndarray:
    """An ember or torch tensor (or a number) as float64 NumPy for comparison."""
    if isinstance(t, ember.Tensor):
        a = t.detach()._data
        return a.astype(np.float64) if a.dtype.kind == "V" or str(a.dtype) == "bfloat16" else np.asarray(a)
    if isinstance(t, torch.Tensor):
        t = t.detach()
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    return np.asarray(t)


def make_inputs(shapes, dtype="float32", seed=0, low=-2.0, high=2.0, positive=False, noncontiguous=False):
    """Random NumPy float64 arrays of the given shapes (permuted views if noncontiguous)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        if isinstance(s, np.ndarray):
            out.append(s)
            continue
        a = rng.uniform(0.1 if positive else low, high, size=s)
        if noncontiguous and len(s) >= 2:
            a = np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)
        out.append(a)
    return out


def _wrap(lib, arrays, dtype, grad):
    ts = []
    for a in arrays:
        if lib is ember:
            if a.dtype.kind in "iub":
                ts.append(ember.from_numpy(a.copy()))
                continue
            t = ember.tensor(a.astype(np.float64)).to(dtype)
            if grad:
                t.requires_grad_(True)
        else:
            if a.dtype.kind in "iub":
                ts.append(torch.from_numpy(a.copy()))
                continue
            t = torch.tensor(a.astype(np.float64)).to(getattr(torch, dtype))
            if grad:
                t.requires_grad_(True)
        ts.append(t)
    return ts


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def check_op(fn, shapes, dtype="float32", grad=True, seed=0, positive=False, noncontiguous=False,
             atol=None, rtol=None, inputs=None):
    """Compare `fn(ember, *xs)` with `fn(torch, *xs)`: outputs, then gradients of sum(out * w)."""
    arrays = inputs if inputs is not None else make_inputs(shapes, dtype, seed, positive=positive,
                                                           noncontiguous=noncontiguous)
    a_tol, r_tol = TOL[dtype]
    atol = a_tol if atol is None else atol
    rtol = r_tol if rtol is None else rtol
    ex = _wrap(ember, arrays, dtype, grad)
    tx = _wrap(torch, arrays, dtype, grad)
    eo, to = _outputs(fn(ember, *ex)), _outputs(fn(torch, *tx))
    assert len(eo) == len(to)
    rng = np.random.default_rng(seed + 1)
    e_loss, t_loss = None, None
    for e, t in zip(eo, to):
        en, tn = to_numpy(e), to_numpy(t)
        assert en.shape == tn.shape, f"shape {en.shape} != torch {tn.shape}"
        np.testing.assert_allclose(en, tn, atol=atol, rtol=rtol, err_msg="forward differs from torch")
        if grad and isinstance(e, ember.Tensor) and e.requires_grad:
            w = rng.normal(size=en.shape)
            e_l = (e * ember.tensor(w).to(e.dtype)).sum()
            t_l = (t * torch.tensor(w).to(t.dtype)).sum()
            e_loss = e_l if e_loss is None else e_loss + e_l
            t_loss = t_l if t_loss is None else t_loss + t_l
    if e_loss is None:
        return
    e_loss.backward()
    t_loss.backward()
    for i, (e, t) in enumerate(zip(ex, tx)):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            if t.grad is None:
                assert e.grad is None or not np.any(to_numpy(e.grad)), f"input {i}: torch has no grad"
                continue
            assert e.grad is not None, f"input {i}: ember produced no gradient"
            np.testing.assert_allclose(to_numpy(e.grad), to_numpy(t.grad), atol=atol * 10, rtol=rtol * 10,
                                       err_msg=f"gradient of input {i} differs from torch")


def gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, seed=0):
    """Check ember's gradient of sum(w * fn(*inputs)) against central differences in float64.

    `inputs` are NumPy arrays (float ones are differentiated; integer ones are passed as is).
    """
    rng = np.random.default_rng(seed)
    arrays = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a) for a in inputs]
    diff = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]

    def run(arrs, grad):
        ts = []
        for i, a in enumerate(arrs):
            t = ember.from_numpy(a.copy()) if i not in diff else ember.tensor(a, dtype=ember.float64)
            if grad and i in diff:
                t.requires_grad_(True)
            ts.append(t)
        return ts, _outputs(fn(*ts))

    ts, outs = run(arrays, True)
    ws = [rng.normal(size=o.shape) for o in outs]
    loss = None
    for o, w in zip(outs, ws):
        if not o.dtype.is_floating_point:
            continue
        term = (o * ember.tensor(w, dtype=ember.float64)).sum()
        loss = term if loss is None else loss + term
    assert loss is not None and loss.requires_grad, "function output does not depend on the inputs"
    got = ember.autograd.grad(loss, [ts[i] for i in diff], allow_unused=True, materialize_grads=True)

    def scalar(arrs):
        _, outs = run(arrs, False)
        return sum(float(np.sum(o.detach()._data * w)) for o, w in zip(outs, ws) if o.dtype.is_floating_point)

    for gi, i in zip(got, diff):
        num = np.zeros_like(arrays[i])
        flat = arrays[i].reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            up = scalar(arrays)
            flat[j] = orig - eps
            down = scalar(arrays)
            flat[j] = orig
            num.reshape(-1)[j] = (up - down) / (2 * eps)
        np.testing.assert_allclose(gi.detach()._data, num, atol=atol, rtol=rtol,
                                   err_msg=f"analytic gradient of input {i} differs from finite differences")


def gradgradcheck(fn, inputs, **kw):
    """Second-order check: gradcheck the function x -> d(sum(v * fn(x)))/dx built with create_graph."""
    rng = np.random.default_rng(123)
    probe = {}

    def first_grad(*ts):
        ts = [t if t.requires_grad or not t.dtype.is_floating_point else t.detach().requires_grad_() for t in ts]
        outs = _outputs(fn(*ts))
        if "v" not in probe:
            probe["v"] = [rng.normal(size=o.shape) for o in outs]
        loss = sum((o * ember.tensor(v, dtype=ember.float64)).sum() for o, v in zip(outs, probe["v"]))
        diff = [t for t in ts if t.requires_grad]
        return ember.autograd.grad(loss, diff, create_graph=True, allow_unused=True, materialize_grads=True)

    gradcheck(first_grad, inputs, **kw)
