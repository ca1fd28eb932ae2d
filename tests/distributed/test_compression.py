"""D7: compression hooks send at most their configured share of DDP's bytes and still converge."""

import numpy as np
import pytest

from .mpi import run_mpi

STEPS = 150


@pytest.fixture(scope="module")
def dense():
    return run_mpi(2, "compress_mlp.py", "none", STEPS)[0][0][0]


def test_hook_path_without_compression_equals_plain_ddp_exactly(dense):
    got = run_mpi(2, "compress_mlp.py", "identity", STEPS)[0][0][0]
    assert got["losses"] == dense["losses"]
    assert got["weights"] == dense["weights"]


@pytest.mark.parametrize("spec,max_ratio,max_rel_loss", [
    # top-k delays small coordinates (error feedback), which costs most on a run this short: measured
    # +16% (DGC) and +47% (plain error feedback under momentum SGD) at 150 steps; see docs/distributed.md
    ("fp16", 0.5, 0.02), ("bf16", 0.5, 0.02), ("dgc:0.1", 0.1, 0.25), ("topk:0.1", 0.1, 0.6),
    ("powersgd:2", 0.13, 0.05),
    ("terngrad", 0.26, 0.05),
])
def test_compressed_bytes_and_convergence(dense, spec, max_ratio, max_rel_loss):
    got = run_mpi(2, "compress_mlp.py", spec, STEPS)[0][0][0]
    assert got["ratio"] <= max_ratio
    # the bytes counted by comm stats agree with the hook's own ratio
    assert got["sent"] <= max_ratio * dense["sent"] * 1.01
    final, ref = np.mean(got["losses"][-10:]), np.mean(dense["losses"][-10:])
    assert final <= ref * (1 + max_rel_loss), (final, ref)
    assert final < 0.15 * got["losses"][0]  # it learned: the loss fell by more than 85%
