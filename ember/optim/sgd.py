"""SGD with momentum, dampening, Nesterov momentum and L2 weight decay: PyTorch's update rule."""

from __future__ import annotations

from ..autograd import no_grad
from .optimizer import Optimizer, required


class SGD(Optimizer):
    """Stochastic gradient descent, exactly as torch.optim.SGD:

        g = grad + weight_decay * p
        b = g (first step) or momentum * b + (1 - dampening) * g
        g = g + momentum * b (nesterov) or b
        p = p - lr * g

    State per parameter: "momentum_buffer" (only when momentum != 0).
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False):
        if lr is not required and lr < 0.0:
            raise ValueError(f"SGD: invalid learning rate {lr}, expected >= 0")
        if momentum < 0.0:
            raise ValueError(f"SGD: invalid momentum {momentum}, expected >= 0")
        if weight_decay < 0.0:
            raise ValueError(f"SGD: invalid weight_decay {weight_decay}, expected >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure()'s loss if given."""
        loss = self._closure_loss(closure)
        c = self._const
        for group in self.param_groups:
            lr, mom, damp, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                if wd != 0:
                    g = g + p * c(wd, p)
                if mom != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = g.clone()
                    else:
                        buf = state["momentum_buffer"] = buf * c(mom, p) + (g if damp == 0 else
                                                                               g * c(1 - damp, p))
                    g = g + buf * c(mom, p) if group["nesterov"] else buf
                p.sub_(g * c(lr, p))
        return loss
