"""Failure modes: 'raise' (rank 1 raises), 'skip' (rank 2 never joins), 'mismatch' (shapes differ)."""

import sys
import time

import ember
import ember.distributed as dist

dist.init(timeout=float(sys.argv[2]) if len(sys.argv) > 2 else 300)
r = dist.get_rank()
mode = sys.argv[1]
if mode == "raise" and r == 1:
    raise ValueError("boom on rank 1")
if mode == "skip" and r == 2:
    time.sleep(60)
if mode == "mismatch":
    dist.all_reduce(ember.ones(4 + r))
dist.all_reduce(ember.ones(4))
dist.barrier()
