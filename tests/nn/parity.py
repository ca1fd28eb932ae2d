"""Module parity with PyTorch: copy a torch module's weights into the ember twin through its state dict,
run both on the same inputs and compare outputs, input gradients and parameter gradients by name."""

from __future__ import annotations

import numpy as np
import torch

import ember


def ember_state(tm: torch.nn.Module) -> dict:
    """A torch module's state dict as ember tensors (through NumPy)."""
    return {k: ember.tensor(v.detach().cpu().numpy()) for k, v in tm.state_dict().items()}


def copy_weights(em, tm) -> None:
    missing, unexpected = em.load_state_dict(ember_state(tm))
    assert not missing and not unexpected


def _flat(out) -> list:
    if isinstance(out, (tuple, list)):
        return [x for o in out for x in _flat(o)]
    return [out]


def _np(t) -> np.ndarray:
    if isinstance(t, ember.Tensor):
        return np.asarray(t.detach()._data, dtype=np.float64)
    return t.detach().double().numpy()


def run_both(em, tm, inputs, train: bool = False, grad: bool = True, seed: int = 0, kwargs=None):
    """Run em(*inputs) and tm(*inputs); float NumPy inputs become tensors that require grad, other
    values pass through (integer arrays become int64 tensors, None stays None)."""
    copy_weights(em, tm)
    em.train(train)
    tm.train(train)
    ex, tx = [], []
    for a in inputs:
        if isinstance(a, np.ndarray):
            if a.dtype.kind == "f":
                ex.append(ember.tensor(a.astype(np.float32), requires_grad=grad))
                tx.append(torch.tensor(a.astype(np.float32), requires_grad=grad))
            else:
                ex.append(ember.tensor(a))
                tx.append(torch.tensor(a))
        else:
            ex.append(a)
            tx.append(a)
    kwargs = kwargs or {}
    ekw = {k: _convert(v, ember) for k, v in kwargs.items()}
    tkw = {k: _convert(v, torch) for k, v in kwargs.items()}
    return ex, tx, em(*ex, **ekw), tm(*tx, **tkw)


def _convert(v, lib):
    if isinstance(v, np.ndarray):
        return ember.tensor(v) if lib is ember else torch.tensor(v)
    if isinstance(v, tuple):
        return tuple(_convert(x, lib) for x in v)
    return v


def check_module(em, tm, inputs, atol: float = 1e-5, rtol: float = 1e-4, train: bool = False,
                 grad: bool = True, seed: int = 0, kwargs=None, grad_atol: float | None = None):
    """Forward outputs, input gradients and parameter gradients of em and tm agree."""
    ex, tx, eo, to = run_both(em, tm, inputs, train, grad, seed, kwargs)
    eo, to = _flat(eo), _flat(to)
    assert len(eo) == len(to), f"{len(eo)} outputs, torch has {len(to)}"
    rng = np.random.default_rng(seed + 1)
    e_loss = t_loss = None
    for i, (e, t) in enumerate(zip(eo, to)):
        if t is None:
            assert e is None, f"output {i}: torch returns None"
            continue
        assert tuple(e.shape) == tuple(t.shape), f"output {i}: {tuple(e.shape)} != torch {tuple(t.shape)}"
        np.testing.assert_allclose(_np(e), _np(t), atol=atol, rtol=rtol,
                                   err_msg=f"output {i} differs from torch")
        if grad and t.requires_grad:
            w = rng.normal(size=tuple(t.shape))
            el = (e * ember.tensor(w, dtype=e.dtype)).sum()
            tl = (t * torch.tensor(w, dtype=t.dtype)).sum()
            e_loss = el if e_loss is None else e_loss + el
            t_loss = tl if t_loss is None else t_loss + tl
    if e_loss is None:
        return eo, to
    e_loss.backward()
    t_loss.backward()
    gtol = atol * 10 if grad_atol is None else grad_atol
    for i, (e, t) in enumerate(zip(ex, tx)):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            assert e.grad is not None, f"input {i}: ember has no gradient"
            np.testing.assert_allclose(_np(e.grad), _np(t.grad), atol=gtol, rtol=rtol * 10,
                                       err_msg=f"gradient of input {i} differs from torch")
    tparams = dict(tm.named_parameters())
    eparams = dict(em.named_parameters())
    assert list(eparams) == list(tparams), f"parameter names {list(eparams)} != torch {list(tparams)}"
    for name, tp in tparams.items():
        ep = eparams[name]
        if tp.grad is None:
            assert ep.grad is None or not np.any(_np(ep.grad)), f"{name}: torch has no gradient"
            continue
        assert ep.grad is not None, f"{name}: ember has no gradient"
        np.testing.assert_allclose(_np(ep.grad), _np(tp.grad), atol=gtol, rtol=rtol * 10,
                                   err_msg=f"gradient of parameter {name} differs from torch")
    return eo, to


def rand(*shape, seed: int = 0, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, size=shape)
