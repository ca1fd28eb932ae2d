"""ZeRO sharded checkpoints across world sizes.

usage: zero_ckpt.py save DIR       train 3 steps, save, train 2 more (reports the last 2 losses)
       zero_ckpt.py load IN OUT    load IN, save to OUT at once, train 2 steps (reports the losses)
"""

import sys

import numpy as np
from _report import report

import ember
import ember.distributed as dist
from ember import nn, optim
from ember.distributed.checkpoint import load_sharded, save_sharded
from ember.distributed.zero import ZeroConfig, ZeroDataParallel

dist.init()
rank, world = dist.get_rank(), dist.get_world_size()
ember.manual_seed(11)
model = nn.Sequential(nn.Linear(7, 13), nn.Tanh(), nn.Linear(13, 5), nn.Tanh(), nn.Linear(5, 3))
engine = ZeroDataParallel(model, lambda ps: optim.AdamW(ps, lr=0.01), ZeroConfig(stage=2))
data = np.random.default_rng(0)
batches = [(data.normal(size=(24, 7)), data.normal(size=(24, 3))) for _ in range(5)]


def train(steps):
    out = []
    for x, y in steps:
        per = 24 // world
        xs = ember.tensor(x[rank * per:(rank + 1) * per], dtype=ember.float32)
        ys = ember.tensor(y[rank * per:(rank + 1) * per], dtype=ember.float32)
        loss = ((engine(xs) - ys) ** 2).mean()
        loss.backward()
        engine.step()
        engine.zero_grad()
        loss = loss.detach().clone()
        dist.all_reduce(loss, dist.ReduceOp.AVG)
        out.append(loss.item())
    return out


if sys.argv[1] == "save":
    train(batches[:3])
    save_sharded(engine, sys.argv[2])
    report({"rank": rank, "losses": train(batches[3:])})
else:
    load_sharded(engine, sys.argv[2])
    save_sharded(engine, sys.argv[3])
    report({"rank": rank, "losses": train(batches[3:])})
