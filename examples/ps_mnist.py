"""Train the W1 MLP on MNIST through a stale-synchronous parameter server.

    ember run -n 3 examples/ps_mnist.py --staleness 2       # 1 server + 2 workers

Rank 0 serves the parameters and runs SGD; the other ranks pull, compute gradients on their half
of each batch and push. With only the 10,000-image test set at ../shared/data/mnist, the first
8,000 images train and the last 2,000 are held out (about 96% after 1,500 steps).
"""

import argparse
import os

import numpy as np

import ember
from ember import nn, optim
from ember.data.datasets import MNIST
from ember.distributed import get_rank, get_world_size, init
from ember.distributed.ps import ParameterServer, PSConfig, PSWorker, is_server

p = argparse.ArgumentParser()
p.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"))
p.add_argument("--steps", type=int, default=1500)
p.add_argument("--staleness", type=int, default=2)
p.add_argument("--servers", type=int, default=1)
args = p.parse_args()

init()
cfg = PSConfig(servers=args.servers, consistency="ssp", staleness=args.staleness)
ember.manual_seed(0)  # every rank builds the same initial model
model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))

if is_server(cfg):
    server = ParameterServer(model, lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), cfg)
    log = server.serve()
    worst = max(entry[3] for entry in log)
    print(f"server {get_rank()}: {server.version} clocks applied; worst staleness read {worst} (bound "
          f"{args.staleness})")
else:
    mnist = MNIST(args.data_dir, train=False)
    x = mnist.data.numpy().reshape(-1, 784).astype(np.float32) / 255.0
    y = mnist.targets.numpy()
    worker = PSWorker(model, cfg)
    workers = get_world_size() - cfg.servers
    rng = np.random.default_rng(0)  # the same global batches on every worker; each takes its rows
    for _ in range(args.steps):
        idx = rng.integers(0, 8000, size=128)
        mine = idx[worker.index::workers]
        worker.pull()
        loss = nn.functional.cross_entropy(model(ember.tensor(x[mine])), ember.tensor(y[mine]))
        loss.backward()
        worker.push()
        model.zero_grad()
    worker.pull()
    with ember.no_grad():
        acc = (model(ember.tensor(x[8000:])).argmax(1).numpy() == y[8000:]).mean()
    worker.close()
    print(f"worker {worker.index}: held-out accuracy {acc:.4f}")
