"""DDP's no_sync (gradient accumulation), unused-parameter detection and GradScaler/autocast.

usage: ddp_features.py CASE    (CASE: no_sync | unused_found | unused_error | amp | compile | eager)
"""

import sys

import numpy as np
from _report import report

import ember
import ember.distributed as dist
from ember import amp, nn

case = sys.argv[1]
dist.init()
rank, world = dist.get_rank(), dist.get_world_size()
ember.manual_seed(0)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        return self.b(self.a(x).tanh())


data = np.random.default_rng(rank)
out = {"rank": rank}
if case == "no_sync":
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    ddp = dist.DistributedDataParallel(model)
    xs = [ember.tensor(data.normal(size=(3, 4)), dtype=ember.float32) for _ in range(2)]
    before = dist.stats(reset=True)
    with ddp.no_sync():
        ddp(xs[0]).square().sum().backward()
    mid = dist.stats().get("all_reduce/world", {"calls": 0})["calls"]
    ddp(xs[1]).square().sum().backward()
    out["calls_inside_no_sync"] = mid
    out["calls_total"] = dist.stats()["all_reduce/world"]["calls"]
    out["grads"] = [p.grad.numpy().tolist() for p in model.parameters()]
    # the reference: the sum over both micro-batches of every rank's loss, averaged over ranks
    all_x = [None] * world
    mine = np.concatenate([x.numpy() for x in xs])
    gathered = ember.zeros(world * mine.size)
    dist.all_gather_into_tensor(gathered, ember.tensor(mine.reshape(-1)))
    ref = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    ref.load_state_dict(model.state_dict())
    ref(gathered.reshape(world * 6, 4)).square().sum().mul(1.0 / world).backward()
    out["ref_grads"] = [p.grad.numpy().tolist() for p in ref.parameters()]
elif case in ("unused_found", "unused_error"):
    model = Branchy()
    ddp = dist.DistributedDataParallel(model, find_unused_parameters=case == "unused_found")
    try:
        for _ in range(2):
            ddp(ember.randn(3, 4)).sum().backward()
        out["ok"] = True
        out["unused_grad"] = model.unused.weight.grad.numpy().tolist()
    except dist.DistributedError as e:
        out["error"] = str(e)
elif case == "amp":
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    ddp = dist.DistributedDataParallel(model)
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    scaler = amp.GradScaler()
    losses = []
    for step in range(5):
        x = ember.tensor(np.random.default_rng(step).normal(size=(8, 4)), dtype=ember.float32)
        x = x[rank * 4:(rank + 1) * 4]
        with amp.autocast(dtype=ember.bfloat16):
            loss = ddp(x).float().square().mean()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        losses.append(loss.item())
    out["losses"] = losses
    out["weights"] = [p.detach().numpy().tolist() for p in model.parameters()]
elif case in ("compile", "eager"):
    import warnings
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    ddp = dist.DistributedDataParallel(model)
    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x):
        loss = ddp(x).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss.detach()
    if case == "compile":
        step = ember.compile(step)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = []
        for i in range(4):
            x = ember.tensor(np.random.default_rng(i).normal(size=(8, 4)), dtype=ember.float32)
            losses.append(step(x[rank * 4:(rank + 1) * 4]).item())
    out["losses"] = losses
    out["warnings"] = [str(w.message) for w in caught]
    out["weights"] = [p.detach().numpy().tolist() for p in model.parameters()]
report(out)
