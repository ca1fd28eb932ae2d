"""D2: ZeRO stage 1/2/3 against DDP and a single process; memory and communication per rank.

usage: zero_mlp.py MODE DTYPE STEPS   (MODE: single | ddp | zero1 | zero2 | zero3)
"""

import sys

import numpy as np
from _report import report

import ember
import ember.distributed as dist
from ember import nn, optim
from ember.distributed.zero import ZeroConfig, ZeroDataParallel

mode, dtype, steps = sys.argv[1], getattr(ember, sys.argv[2]), int(sys.argv[3])
GLOBAL_BATCH = 24
ember.manual_seed(7)
model = nn.Sequential(nn.Linear(7, 13), nn.Tanh(), nn.Linear(13, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)


def make_opt(params):
    return optim.AdamW(params, lr=0.01, weight_decay=0.01)


rank, world = 0, 1
if mode == "single":
    net, opt = model, make_opt(model.parameters())
else:
    dist.init()
    rank, world = dist.get_rank(), dist.get_world_size()
    if mode == "ddp":
        net = dist.DistributedDataParallel(model)
        opt = make_opt(model.parameters())
    else:
        net = ZeroDataParallel(model, make_opt, ZeroConfig(stage=int(mode[-1])))
        opt = net

data = np.random.default_rng(0)
losses, stats, memory = [], None, None
for _ in range(steps):
    x = ember.tensor(data.normal(size=(GLOBAL_BATCH, 7))).to(dtype)
    y = ember.tensor(data.normal(size=(GLOBAL_BATCH, 3))).to(dtype)
    per = GLOBAL_BATCH // world
    xs, ys = x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]
    if mode != "single":
        dist.stats(reset=True)
    loss = ((net(xs).float() - ys.float()) ** 2).mean()
    loss.backward()
    opt.step()
    if mode.startswith("zero"):
        stats = dist.stats()
        memory = net.memory_report()
    opt.zero_grad()
    if mode != "single":
        loss = loss.detach().clone()
        dist.all_reduce(loss, dist.ReduceOp.AVG)
    losses.append(float(loss.item()))

out = {"rank": rank, "losses": losses, "world": world}
if mode.startswith("zero"):
    out.update(stats=stats, memory=memory, units=[[u.numel, u.padded] for u in net.units])
    # gather the full parameters for comparison (stage 3 holds shards only)
    for u in net.units:
        u.gather(net.group)
    out["weights"] = [p.detach().float().numpy().tolist() for p in model.parameters()]
else:
    out["weights"] = [p.detach().float().numpy().tolist() for p in model.parameters()]
report(out)
