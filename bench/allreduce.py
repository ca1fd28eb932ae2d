"""ember's all_reduce against raw mpi4py Allreduce on the same buffers (run with `ember run -n 2`).

The difference is ember's bookkeeping: the cross-rank argument check, byte accounting and the
watchdog's polling wait. Each size is timed interleaved with the raw call, per BENCHMARKS.md.
usage: ember run -n 2 bench/allreduce.py [--no-check]
"""

from __future__ import annotations

import sys

import numpy as np
from common import compare, fmt_time, machine_header, spread, table
from mpi4py import MPI

import ember
import ember.distributed as dist


def main() -> None:
    checked = "--no-check" not in sys.argv
    dist.init(check_args=checked)
    rank, world = dist.get_rank(), dist.get_world_size()
    rows, notes = [], []
    for n in (1 << 10, 1 << 14, 1 << 18, 1 << 20, 1 << 22):
        buf = np.ones(n, dtype=np.float32)
        t = ember.from_numpy(buf)

        def em(t=t, buf=buf):
            dist.all_reduce(t)
            buf[...] = 1.0

        def raw(buf=buf):  # the same in-place call and buffer reset, so the comparison is like for like
            MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            buf[...] = 1.0
        times = compare({"ember": em, "mpi4py": raw}, reps=20, repeats=3)
        e, m = times["ember"], times["mpi4py"]
        rows.append([f"{n * 4 / 2**20:.3g} MiB", fmt_time(e.median), fmt_time(m.median),
                     f"{e.median / m.median:.2f}x", f"{(e.median / m.median - 1) * 100:+.1f}%",
                     f"{spread(e)} / {spread(m)}"])
    if rank == 0:
        print(machine_header())
        print(f"ranks: {world}; cross-rank argument check: {'on' if checked else 'off (--no-check)'}")
        print(table("all_reduce (sum, float32, in place): ember vs raw mpi4py Allreduce",
                    ["size", "ember", "mpi4py", "ratio", "overhead", "spread"], rows, notes))


if __name__ == "__main__":
    main()
