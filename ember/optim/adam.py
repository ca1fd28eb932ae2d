"""Adam and AdamW (decoupled weight decay), with optional AMSGrad: PyTorch's update rules."""

from __future__ import annotations

import math

from ..autograd import no_grad
from ..creation import zeros_like
from ..ops import maximum
from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), exactly as torch.optim.Adam:

        g = grad + weight_decay * p            (AdamW instead: p = p * (1 - lr * weight_decay))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g    (amsgrad: vmax = max(vmax, v), used below for v)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    State per parameter: "step" (int), "exp_avg", "exp_avg_sq", and "max_exp_avg_sq" with amsgrad.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        if lr < 0.0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr}, expected >= 0")
        if eps < 0.0:
            raise ValueError(f"{type(self).__name__}: invalid eps {eps}, expected >= 0")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{type(self).__name__}: invalid beta at index {i}: {b}, "
                                 "expected 0 <= beta < 1")
        if weight_decay < 0.0:
            raise ValueError(f"{type(self).__name__}: invalid weight_decay {weight_decay}, expected >= 0")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

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
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = zeros_like(p)
                state["step"] += 1
                t = state["step"]
                g = -p.grad if group["maximize"] else p.grad
                if wd != 0:
                    if group["decoupled_weight_decay"]:
                        p.mul_(c(1 - lr * wd, p))
                    else:
                        g = g + p * c(wd, p)
                # moments are rebound, not updated in place: one memory pass fewer per op
                m = state["exp_avg"] = state["exp_avg"] * c(beta1, p) + g * c(1 - beta1, p)
                v = state["exp_avg_sq"] = state["exp_avg_sq"] * c(beta2, p) + g * g * c(1 - beta2, p)
                if group["amsgrad"]:
                    v = state["max_exp_avg_sq"] = maximum(state["max_exp_avg_sq"], v)
                step_size = lr / (1 - beta1 ** t)
                if step_size == 0:  # lr 0 (e.g. a warmup's first step): moments move, p does not
                    continue
                bc2_sqrt = math.sqrt(1 - beta2 ** t)
                # step_size folded into the denominator: one whole-tensor op fewer than addcdiv
                denom = v.sqrt() * c(1 / (bc2_sqrt * step_size), p) + c(eps / step_size, p)
                p.sub_(m / denom)
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as torch.optim.AdamW:
    the parameter shrinks by lr * weight_decay before the Adam step. Default weight_decay 1e-2."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
