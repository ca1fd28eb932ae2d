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
                    g = g + p * wd
                sq = state["square_avg"].mul_(alpha).add_(g * g * (1 - alpha))
                if group["centered"]:
                    ga = state["grad_avg"].lerp_(g, 1 - alpha)
                    avg = (sq - ga * ga).sqrt() + eps
                else:
                    avg = sq.sqrt() + eps
                if mom > 0:
                    buf = state["momentum_buffer"].mul_(mom).add_(g / avg)
                    p.sub_(buf * lr)
                else:
                    p.sub_(g / avg * lr)
        return loss
