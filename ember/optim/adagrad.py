"""Adagrad (Duchi, Hazan & Singer 2011) with learning-rate decay: PyTorch's update rule."""

from __future__ import annotations

from ..autograd import no_grad
from ..creation import full_like
from .optimizer import Optimizer


class Adagrad(Optimizer):
    """Adagrad, exactly as torch.optim.Adagrad:

        g = grad + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g                   (s starts at initial_accumulator_value)
        p = p - clr * g / (sqrt(s) + eps)

    State per parameter: "step" (int), "sum".
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False):
        for name, val in (("learning rate", lr), ("lr_decay", lr_decay), ("weight_decay", weight_decay),
                          ("initial_accumulator_value", initial_accumulator_value), ("eps", eps)):
            if val < 0.0:
                raise ValueError(f"Adagrad: invalid {name} {val}, expected >= 0")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure()'s loss if given."""
        loss = self._closure_loss(closure)
        c = self._const
        for group in self.param_groups:
            lr, lr_decay, wd, eps = group["lr"], group["lr_decay"], group["weight_decay"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0,
                                             "sum": full_like(p, group["initial_accumulator_value"])}
                state["step"] += 1
                g = -p.grad if group["maximize"] else p.grad
                if wd != 0:
                    g = g + p * c(wd, p)
                clr = lr / (1 + (state["step"] - 1) * lr_decay)
                s = state["sum"] = state["sum"] + g * g
                p.sub_(g / (s.sqrt() + c(eps, p)) * c(clr, p))
        return loss
