"""DDP overlap: 2-rank step time with bucketed all-reduces overlapping backward, against the same
run with one all-reduce after backward, and the fraction of communication hidden.

usage: ember run -n 2 bench/ddp_overlap.py [--async-progress]
  fraction hidden = (t_one_bucket - t_buckets) / t_comm, where t_comm is the all-reduce of all the
  gradients alone. MPICH only moves data while a rank is inside an MPI call unless its progress
  thread is on (MPIR_CVAR_ASYNC_PROGRESS=1, which --async-progress sets before MPI starts).
"""

from __future__ import annotations

import os
import sys

if "--async-progress" in sys.argv:
    os.environ["MPIR_CVAR_ASYNC_PROGRESS"] = "1"

import numpy as np  # noqa: E402
from common import compare, fmt_time, machine_header, spread, table  # noqa: E402

import ember  # noqa: E402
import ember.distributed as dist  # noqa: E402
from ember import nn  # noqa: E402


def main() -> None:
    dist.init()
    rank = dist.get_rank()
    ember.manual_seed(0)

    def make():
        return nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                             nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 512))
    overlapped = dist.DistributedDataParallel(make(), bucket_cap_mb=1)
    one_bucket = dist.DistributedDataParallel(make(), bucket_cap_mb=10_000)
    x = ember.tensor(np.random.default_rng(rank).normal(size=(64, 512)), dtype=ember.float32)
    grads = ember.zeros(sum(p.numel() for p in overlapped.module.parameters()))

    def step(model):
        def run():
            loss = model(x).square().mean()
            loss.backward()
            model.module.zero_grad()
        return run

    def comm_only():
        dist.all_reduce(grads, dist.ReduceOp.AVG)

    times = compare({"buckets": step(overlapped), "one": step(one_bucket), "comm": comm_only},
                    reps=20, repeats=3)
    b, o, c = times["buckets"], times["one"], times["comm"]
    hidden = (o.median - b.median) / c.median
    if rank == 0:
        print(machine_header())
        print(f"async progress thread: {os.environ.get('MPIR_CVAR_ASYNC_PROGRESS', '0')}; "
              f"buckets: {len(overlapped.buckets)} vs {len(one_bucket.buckets)}; "
              f"gradient bytes: {grads.nbytes / 2**20:.1f} MiB")
        rows = [["bucketed (overlap)", fmt_time(b.median), spread(b)],
                ["one all-reduce after backward", fmt_time(o.median), spread(o)],
                ["all-reduce of all gradients alone", fmt_time(c.median), spread(c)]]
        print(table("DDP step (forward + backward + gradient all-reduce), 2 ranks",
                    ["variant", "time/step", "spread"], rows,
                    [f"ratio one-bucket / bucketed: {o.median / b.median:.2f}x; "
                     f"fraction of communication hidden: {100 * hidden:.0f}%"]))


if __name__ == "__main__":
    main()
