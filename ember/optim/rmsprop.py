"""RMSprop (Hinton's lecture 6e; centered form from Graves 2013): PyTorch's update rule."""

from __future__ import annotations

from ..autograd import no_grad
from ..creation import zeros_like
from .optimizer import Optimizer


class RMSprop(Optimizer):
    """RMSprop, exactly as torch.optim.RMSprop:

        g = grad + weight_decay * p
        s = alpha * s + (1 - alpha) * g * g
        avg = sqrt(s - ga * ga) + eps with ga = alpha * ga + (1 - alpha) * g (centered), else sqrt(s) + eps
        b = momentum * b + g / avg; p = p - lr * b     (momentum > 0)
        p = p - lr * g / avg                            (otherwise)

    State per parameter: "step" (int), "square_avg", "momentum_buffer" (momentum > 0),
    "grad_avg" (centered).
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False):
        for name, val in (("learning rate", lr), ("eps", eps), ("momentum", momentum),
                          ("weight_decay", weight_decay), ("alpha", alpha)):
            if val < 0.0:
                raise ValueError(f"RMSprop: invalid {name} {val}, expected >= 0")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure()'s loss if given."""
        loss = self._closure_loss(closure)
        c = self._const
        for group in self.param_groups:
            lr, alpha, eps, wd, mom = (group[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum"))
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0, "square_avg": zeros_like(p)}
                    if mom > 0:
                        state["momentum_buffer"] = zeros_like(p)
                    if group["centered"]:
                        state["grad_avg"] = zeros_like(p)
                state["step"] += 1
                g = -p.grad if group["maximize"] else p.grad
                if wd != 0:
                    g = g + p * c(wd, p)
                sq = state["square_avg"] = state["square_avg"] * c(alpha, p) + g * g * c(1 - alpha, p)
                if group["centered"]:
                    ga = state["grad_avg"] = state["grad_avg"].lerp(g, c(1 - alpha, p))
                    avg = (sq - ga * ga).sqrt() + c(eps, p)
                else:
                    avg = sq.sqrt() + c(eps, p)
                if mom > 0:
                    buf = state["momentum_buffer"] = state["momentum_buffer"] * c(mom, p) + g / avg
                    p.sub_(buf * c(lr, p))
                else:
                    p.sub_(g / avg * c(lr, p))
        return loss
