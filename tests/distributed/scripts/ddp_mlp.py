"""D1: an MLP trained with DDP on N ranks, or alone (N=1 without mpiexec) on the full batch.

usage: ddp_mlp.py MODE DTYPE STEPS  (MODE: ddp | single | skip_allreduce)
Prints RESULT lines with per-step global losses, final weights, comm stats and events.
"""

import sys
import time

import numpy as np
from _report import report

import ember
import ember.distributed as dist
from ember.nn.module import Module
from ember.nn.parameter import Parameter

mode, dtype, steps = sys.argv[1], getattr(ember, sys.argv[2]), int(sys.argv[3])
GLOBAL_BATCH, D_IN, HIDDEN, D_OUT, LR = 24, 7, 13, 3, 0.1


class MLP(Module):
    def __init__(self):
        super().__init__()
        g = ember.Generator(1234)
        self.w1 = Parameter(ember.randn(HIDDEN, D_IN, generator=g, dtype=dtype) * 0.5)
        self.b1 = Parameter(ember.randn(HIDDEN, generator=g, dtype=dtype) * 0.1)
        self.w2 = Parameter(ember.randn(D_OUT, HIDDEN, generator=g, dtype=dtype) * 0.5)
        self.b2 = Parameter(ember.randn(D_OUT, generator=g, dtype=dtype) * 0.1)

    def forward(self, x):
        h = (x @ self.w1.mT + self.b1).tanh()
        if _probe is not None:
            h.register_hook(lambda g: _probe.append(time.perf_counter()))
        return h @ self.w2.mT + self.b2


_probe = None
rank, world = 0, 1
model = MLP()
if mode != "single":
    dist.init()
    rank, world = dist.get_rank(), dist.get_world_size()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=200 / 2**20)  # ~200-byte buckets: several
    if mode == "skip_allreduce":  # negative control: the reduction is skipped
        ddp.register_comm_hook(None, lambda state, bucket: type("F", (), {"wait": lambda self: bucket.buffer()})())
    net = ddp
else:
    net = model

data = np.random.default_rng(0)
losses, events = [], []

for step in range(steps):
    x = ember.tensor(data.normal(size=(GLOBAL_BATCH, D_IN)), dtype=dtype)
    y = ember.tensor(data.normal(size=(GLOBAL_BATCH, D_OUT)), dtype=dtype)
    per = GLOBAL_BATCH // world
    xs, ys = x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]
    if step == steps - 1 and mode == "ddp":
        events = dist.record_events(True)
        _probe = []
    loss = ((net(xs) - ys) ** 2).mean()
    before = dist.stats(reset=True) if mode != "single" else {}
    loss.backward()
    after = dist.stats() if mode != "single" else {}
    with ember.no_grad():
        for p in model.parameters():
            p -= LR * p.grad
            p.grad = None
    if mode != "single":
        g = loss.detach().clone()
        dist.all_reduce(g, dist.ReduceOp.AVG)
        loss = g
    losses.append(float(loss.item()))
    if step == steps - 1 and mode == "ddp":
        dist.record_events(False)

out = {"rank": rank, "losses": losses,
       "weights": {n: p.detach().numpy().astype(float).tolist() for n, p in model.named_parameters()},
       "grad_bytes": sum(p.nbytes for p in model.parameters())}
if mode != "single":
    s = after.get("all_reduce/world", {"calls": 0, "bytes": 0})
    out.update(allreduce_calls=s["calls"], allreduce_bytes=s["bytes"], buckets=len(ddp.buckets))
    if mode == "ddp":
        # when each bucket's all-reduce started, and when backward reached the first layer
        out["starts"] = [t for t, e, n in events if e == "start" and n == "all_reduce"]
        out["first_layer_grad"] = _probe[0]
report(out)
