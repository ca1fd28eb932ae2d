"""D7: DDP with a gradient-compression hook on an MLP regression task.

usage: compress_mlp.py SPEC STEPS   (SPEC: none | identity | fp16 | bf16 | topk:R | dgc:R | powersgd:K | terngrad)
'identity' runs the hook path with a float32 'cast' (no compression): it must equal plain DDP.
"""

import sys

import numpy as np
from _report import report

import ember
import ember.distributed as dist
from ember import nn, optim
from ember.distributed import compression

spec, steps = sys.argv[1], int(sys.argv[2])
dist.init()
rank, world = dist.get_rank(), dist.get_world_size()
ember.manual_seed(3)
model = nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))
teacher = np.random.default_rng(1).normal(size=(16, 4))
ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.01)
state = None
momentum = 0.9
if spec == "identity":
    state, hook = compression.CastState(ember.float32), compression.fp16_compress_hook
elif spec != "none":
    state, hook = compression.parse(spec)
if state is not None:
    ddp.register_comm_hook(state, hook)
    if spec.startswith("dgc"):
        momentum = 0.0  # DGC applies momentum inside the compressor (momentum correction)
opt = optim.SGD(model.parameters(), lr=0.05, momentum=momentum)
data = np.random.default_rng(0)
losses = []
dist.stats(reset=True)
for _ in range(steps):
    x = data.normal(size=(32, 16))
    y = np.tanh(x @ teacher)
    per = 32 // world
    xs = ember.tensor(x[rank * per:(rank + 1) * per], dtype=ember.float32)
    ys = ember.tensor(y[rank * per:(rank + 1) * per], dtype=ember.float32)
    loss = ((ddp(xs) - ys) ** 2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    g = loss.detach().clone()
    dist.all_reduce(g, dist.ReduceOp.AVG)
    losses.append(g.item())
s = dist.stats()
sent = sum(v["bytes"] for k, v in s.items() if k.split("/")[0] in ("all_reduce", "all_gather")) - 4 * steps
report({"rank": rank, "losses": losses, "ratio": state.ratio if state is not None else 1.0, "sent": sent,
        "grad_bytes": sum(p.nbytes for p in model.parameters()),
        "weights": [p.detach().numpy().tolist() for p in model.parameters()]})
