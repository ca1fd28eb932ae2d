"""LAMB: layer-wise adaptive moments for large-batch training (You et al. 2019, Algorithm 2).

PyTorch has no LAMB; ember follows the paper with phi = identity, the form NVIDIA apex's
FusedLAMB uses (bias correction on by default, decoupled weight decay inside the trust ratio).
"""

from __future__ import annotations

from ..autograd import no_grad
from ..creation import zeros_like
from ..ops import where
from .lars import _norm
from .optimizer import Optimizer


class LAMB(Optimizer):
    """Adam moments with a per-tensor trust ratio. For parameter tensor w with gradient g at step t:

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        r = (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)   (bias_correction)
        u = r + weight_decay * w
        ratio = ||w|| / ||u||   (1 where either norm is 0)
        w = w - lr * ratio * u

    State per parameter: "step" (int), "exp_avg", "exp_avg_sq".
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, bias_correction: bool = True):
        if lr < 0.0 or eps < 0.0 or weight_decay < 0.0:
            raise ValueError(f"LAMB: lr, eps and weight_decay must be >= 0, got {lr}, {eps}, {weight_decay}")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"LAMB: invalid beta at index {i}: {b}, expected 0 <= beta < 1")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      bias_correction=bias_correction))

    @no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure()'s loss if given."""
        loss = self._closure_loss(closure)
        c = self._const
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0, "exp_avg": zeros_like(p), "exp_avg_sq": zeros_like(p)}
                state["step"] += 1
                t, g = state["step"], p.grad
                m = state["exp_avg"] = state["exp_avg"] * c(beta1, p) + g * c(1 - beta1, p)
                v = state["exp_avg_sq"] = state["exp_avg_sq"] * c(beta2, p) + g * g * c(1 - beta2, p)
                bc1, bc2 = (1 - beta1 ** t, 1 - beta2 ** t) if group["bias_correction"] else (1.0, 1.0)
                u = (m * c(1 / bc1, p)) / ((v * c(1 / bc2, p)).sqrt() + c(eps, p))
                if wd != 0:
                    u = u + p * c(wd, p)
                w_norm, u_norm = _norm(p), _norm(u)
                ratio = where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, 1.0)
                p.sub_(u * (ratio * c(lr, p)))
        return loss
