"""D1: DDP equals the single-process run at the same global batch; bytes, counts and overlap."""

import numpy as np
import pytest

from .mpi import run_mpi


def _single(dtype, steps):
    res, _ = run_mpi(1, "ddp_mlp.py", "single", dtype, steps)
    return res[0][0]


@pytest.mark.parametrize("n", [2, 4])
def test_ddp_losses_and_weights_match_single_process_float32(n):
    ref = _single("float32", 20)
    res, _ = run_mpi(n, "ddp_mlp.py", "ddp", "float32", 20)
    for r in range(n):
        got = res[r][0]
        np.testing.assert_allclose(got["losses"], ref["losses"], rtol=1e-5)
        for name, w in ref["weights"].items():
            np.testing.assert_allclose(got["weights"][name], w, rtol=1e-5, atol=1e-6)


def test_ddp_float64_matches_to_rounding_and_negative_control_fails():
    ref = _single("float64", 5)
    good, _ = run_mpi(2, "ddp_mlp.py", "ddp", "float64", 5)
    np.testing.assert_allclose(good[0][0]["losses"], ref["losses"], rtol=1e-13)
    bad, _ = run_mpi(2, "ddp_mlp.py", "skip_allreduce", "float64", 5)
    # the same comparison must fail when the all-reduce is skipped
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(bad[0][0]["losses"], ref["losses"], rtol=1e-5)


def test_ddp_allreduces_exactly_the_gradient_bytes_once_per_bucket_and_overlaps_backward():
    res, _ = run_mpi(2, "ddp_mlp.py", "ddp", "float32", 3)
    o = res[0][0]
    assert o["allreduce_bytes"] == o["grad_bytes"]
    assert o["allreduce_calls"] == o["buckets"] > 1
    # the first bucket's all-reduce starts before backward reaches the first layer
    assert o["starts"][0] < o["first_layer_grad"]
