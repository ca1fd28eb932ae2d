"""The optimizer, learning-rate schedule, mixed precision and gradient clipping a TrainConfig asks for."""

from __future__ import annotations

import contextlib
import math

from .. import optim
from ..autograd import no_grad
from .config import TrainConfig, TrainError

DEFAULT_LR = {"adamw": 1e-3, "adam": 1e-3, "sgd": 0.01}
DEFAULT_WD = {"adamw": 0.01, "adam": 0.0, "sgd": 0.0}


def build_optimizer(cfg: TrainConfig, model) -> optim.Optimizer:
    """AdamW / Adam / SGD (momentum 0.9) over a model's parameters (or a list of tensors, such as ZeRO's
    shards) with cfg.lr and cfg.weight_decay (or the defaults: lr 1e-3 for Adam(W), 0.01 for SGD; weight
    decay 0.01 for AdamW, else 0)."""
    lr = cfg.lr if cfg.lr is not None else DEFAULT_LR[cfg.optimizer]
    wd = cfg.weight_decay if cfg.weight_decay is not None else DEFAULT_WD[cfg.optimizer]
    params = list(model.parameters()) if hasattr(model, "parameters") else list(model)
    if cfg.optimizer == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=wd)
    if cfg.optimizer == "adam":
        return optim.Adam(params, lr=lr, weight_decay=wd)
    return optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)


def build_scheduler(cfg: TrainConfig, optimizer, total_steps: int):
    """The per-step schedule: none; cosine to 10% of lr (after cfg.warmup_steps of linear warmup); linear
    decay to 0; step (x0.1 at each third); onecycle (peak lr = cfg lr)."""
    sched = optim.lr_scheduler
    warm = min(cfg.warmup_steps, max(total_steps - 1, 0))
    if cfg.scheduler == "none":
        return None
    if cfg.scheduler == "onecycle":
        if total_steps < 2:
            raise TrainError("--scheduler onecycle needs at least 2 steps")
        return sched.OneCycleLR(optimizer, max_lr=optimizer.param_groups[0]["lr"], total_steps=total_steps)
    if cfg.scheduler == "step":
        main = sched.StepLR(optimizer, step_size=max(1, (total_steps - warm) // 3), gamma=0.1)
    elif cfg.scheduler == "linear":
        main = sched.LinearLR(optimizer, start_factor=1.0, end_factor=0.0,
                              total_iters=max(1, total_steps - warm))
    else:
        eta_min = 0.1 * optimizer.param_groups[0]["lr"]
        main = sched.CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warm), eta_min=eta_min)
    if not warm:
        return main
    warmup = sched.LinearLR(optimizer, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm)
    return sched.SequentialLR(optimizer, [warmup, main], milestones=[warm])


def _amp_dtype(mode: str):
    from .. import bfloat16, float16
    return {"fp16": float16, "bf16": bfloat16}[mode]


def autocast_context(mode: str):
    """ember.amp.autocast for 'fp16' / 'bf16', a no-op context for 'off'."""
    if mode == "off":
        return contextlib.nullcontext()
    from .. import amp
    return amp.autocast(dtype=_amp_dtype(mode))


def make_scaler(mode: str):
    """A GradScaler (dynamic loss scaling) for fp16; bf16 has float32's range and needs none."""
    if mode != "fp16":
        return None
    from .. import amp
    return amp.GradScaler()


def clip_grad_norm(parameters, max_norm: float) -> float:
    """Scale all gradients so their global L2 norm is at most max_norm; returns the norm before clipping."""
    try:
        from ..nn.utils import clip_grad_norm_ as fn
    except ImportError:  # ember.nn without utils: the same rule, written here
        fn = None
    if fn is not None:
        return fn(parameters, max_norm)
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    with no_grad():
        total = math.sqrt(sum(float((g.float() * g.float()).sum().item()) for g in grads))
        coef = max_norm / (total + 1e-6)
        if coef < 1:
            for g in grads:
                g.mul_(coef)
    return total
