"""D8: an MLP trained through the parameter server, or by synchronous DDP for reference.

usage: ps_mlp.py MODE SERVERS STALENESS STEPS [mnist]   (MODE: bsp | ssp | asp | ddp)
Workers slow down at random so that clocks drift apart under SSP/ASP.
"""

import sys
import time

import numpy as np
from _report import report

import ember
import ember.distributed as dist
from ember import nn, optim
from ember.distributed.ps import ParameterServer, PSConfig, PSWorker, is_server

mode, servers, s, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
mnist = len(sys.argv) > 5
dist.init()
rank, world = dist.get_rank(), dist.get_world_size()
ember.manual_seed(5)
if mnist:
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
else:
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))


def make_opt(params):
    return optim.SGD(params, lr=0.1 if mnist else 0.05, momentum=0.9)


def batches(worker, workers):
    if mnist:
        import gzip  # noqa: E401
        import os
        root = os.environ["EMBER_MNIST"]
        with gzip.open(os.path.join(root, "t10k-images-idx3-ubyte.gz")) as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)[:8000] / 255.0
        with gzip.open(os.path.join(root, "t10k-labels-idx1-ubyte.gz")) as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)[:8000].astype(np.int64)
        rng = np.random.default_rng(0)
        for _ in range(steps):
            idx = rng.integers(0, 8000, size=128)
            per = 128 // workers
            sel = idx[worker * per:(worker + 1) * per]
            yield ember.tensor(x[sel], dtype=ember.float32), ember.tensor(y[sel])
    else:
        teacher = np.random.default_rng(1).normal(size=(10, 3))
        rng = np.random.default_rng(0)
        for _ in range(steps):
            x = rng.normal(size=(24, 10))
            y = np.tanh(x @ teacher)
            per = 24 // workers
            yield (ember.tensor(x[worker * per:(worker + 1) * per], dtype=ember.float32),
                   ember.tensor(y[worker * per:(worker + 1) * per], dtype=ember.float32))


def loss_fn(out, y):
    return nn.functional.cross_entropy(out, y) if mnist else ((out - y) ** 2).mean()


losses = []
if mode == "ddp":
    ddp = dist.DistributedDataParallel(model)
    opt = make_opt(model.parameters())
    for x, y in batches(rank, world):
        loss = loss_fn(ddp(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        g = loss.detach().clone()
        dist.all_reduce(g, dist.ReduceOp.AVG)
        losses.append(g.item())
    report({"rank": rank, "losses": losses, "weights": [p.detach().numpy().tolist() for p in model.parameters()]})
    sys.exit(0)

cfg = PSConfig(servers=servers, consistency=mode, staleness=s)
if is_server(cfg):
    server = ParameterServer(model, make_opt, cfg)
    log = server.serve()
    report({"rank": rank, "log": log, "version": server.version,
            "weights": [p.detach().numpy().tolist() for p in server.params]})
else:
    worker = PSWorker(model, cfg)
    jitter = np.random.default_rng(100 + rank)
    for x, y in batches(worker.index, world - servers):
        worker.pull()
        loss = loss_fn(model(x), y)
        loss.backward()
        if mode != "bsp":
            time.sleep(jitter.uniform(0, 0.004) * (1 + worker.index))  # uneven workers
        worker.push()
        model.zero_grad()
        losses.append(loss.item())
    out = {"rank": rank, "losses": losses}
    if mnist:  # evaluate the servers' final parameters (pull before close: servers stop after the last close)
        with ember.no_grad():
            import gzip  # noqa: E401
            import os
            root = os.environ["EMBER_MNIST"]
            with gzip.open(os.path.join(root, "t10k-images-idx3-ubyte.gz")) as f:
                x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)[8000:] / 255.0
            with gzip.open(os.path.join(root, "t10k-labels-idx1-ubyte.gz")) as f:
                y = np.frombuffer(f.read(), np.uint8, offset=8)[8000:]
            worker.pull()
            pred = model(ember.tensor(x, dtype=ember.float32)).argmax(1).numpy()
            out["accuracy"] = float((pred == y).mean())
    worker.close()
    report(out)
