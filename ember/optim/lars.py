"""LARS: layer-wise adaptive rate scaling for large-batch SGD (You, Gitman & Ginsburg 2017).

PyTorch has no LARS; ember follows Algorithm 1 of the paper with the trust ratio of NVIDIA
apex's LARC / torchlars (an `eps` in the denominator, ratio 1 where a norm is zero).
"""

from __future__ import annotations

from ..autograd import no_grad
from ..ops import where
from .optimizer import Optimizer


def _norm(x):
    return (x * x).sum().sqrt()


class LARS(Optimizer):
    """SGD with momentum whose step for each parameter tensor is scaled by its trust ratio.

    For each parameter tensor w with gradient g (per-tensor norms, all ops in w's dtype):

        ratio = trust_coefficient * ||w|| / (||g|| + weight_decay * ||w|| + eps)
                (ratio = 1 where ||w|| == 0 or ||g|| == 0)
        d = (g + weight_decay * w) * ratio
        b = d (first step) or momentum * b + d
        w = w - lr * b

    With exclude_1d=True (a per-group option) tensors with <= 1 dim (biases, norm scales) skip
    the trust ratio and weight decay (d = g), as SimCLR and MoCo v3 train. This is not in PyTorch.
    State per parameter: "momentum_buffer" (momentum != 0).
    """

    def __init__(self, params, lr: float = 1e-1, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 1e-3, eps: float = 1e-8, exclude_1d: bool = False):
        for name, val in (("learning rate", lr), ("momentum", momentum), ("weight_decay", weight_decay),
                          ("trust_coefficient", trust_coefficient), ("eps", eps)):
            if val < 0.0:
                raise ValueError(f"LARS: invalid {name} {val}, expected >= 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust_coefficient=trust_coefficient, eps=eps, exclude_1d=exclude_1d))

    @no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure()'s loss if given."""
        loss = self._closure_loss(closure)
        c = self._const
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not (group["exclude_1d"] and p.ndim <= 1):
                    w_norm, g_norm = _norm(p), _norm(g)
                    ratio = w_norm * group["trust_coefficient"] / (g_norm + w_norm * wd + group["eps"])
                    ratio = where((w_norm > 0) & (g_norm > 0), ratio, 1.0)
                    g = (g + p * wd if wd != 0 else g) * ratio
                if mom != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = g.clone()
                    else:
                        buf = state["momentum_buffer"] = buf * c(mom, p) + g
                    g = buf
                p.sub_(g * c(lr, p))
        return loss
