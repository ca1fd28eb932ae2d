"""DDP: no_sync accumulation, unused-parameter detection, and mixed precision with GradScaler."""

import numpy as np

from .mpi import run_mpi


def test_no_sync_accumulates_locally_then_reduces_the_sum_once():
    res, _ = run_mpi(2, "ddp_features.py", "no_sync")
    for r in (0, 1):
        o = res[r][0]
        assert o["calls_inside_no_sync"] == 0
        assert o["calls_total"] >= 1
        for g, ref in zip(o["grads"], o["ref_grads"]):
            np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-6)


def test_unused_parameters_are_found_or_named_in_the_error():
    found, _ = run_mpi(2, "ddp_features.py", "unused_found")
    assert found[0][0]["ok"] and not np.any(found[0][0]["unused_grad"])
    err, _ = run_mpi(2, "ddp_features.py", "unused_error")
    msg = err[0][0]["error"]
    assert "unused.weight" in msg and "find_unused_parameters=True" in msg


def test_ddp_under_autocast_with_grad_scaler_keeps_ranks_identical():
    res, _ = run_mpi(2, "ddp_features.py", "amp")
    assert res[0][0]["weights"] == res[1][0]["weights"]
    assert all(np.isfinite(res[0][0]["losses"]))


def test_compiled_ddp_step_breaks_the_graph_at_the_all_reduce_and_equals_eager():
    eager, _ = run_mpi(2, "ddp_features.py", "eager")
    comp, _ = run_mpi(2, "ddp_features.py", "compile")
    for r in (0, 1):
        assert comp[r][0]["losses"] == eager[r][0]["losses"]
        assert comp[r][0]["weights"] == eager[r][0]["weights"]
    assert any("all_reduce (a collective) cannot be captured" in w for w in comp[0][0]["warnings"])
