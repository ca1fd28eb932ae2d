"""Collectives, byte accounting and failure handling under real mpiexec (2 and 4 ranks)."""

import time

import pytest

from .mpi import run_mpi


@pytest.mark.parametrize("n", [2, 4])
def test_every_collective_matches_its_definition(n):
    res, _ = run_mpi(n, "collectives.py")
    assert sorted(res) == list(range(n))
    for r, (obj,) in res.items():
        failed = [k for k, ok in obj["checks"].items() if not ok]
        assert not failed, f"rank {r}: {failed}"


def test_stats_count_payload_and_ring_bytes():
    n = 4
    res, _ = run_mpi(n, "collectives.py")
    s = res[0][0]["stats"]
    # all_reduce on world: 5-float32 sum, three 1-element reductions, 1000-element async, two 3-element lowp
    ar = s["all_reduce/world"]
    assert ar["calls"] == 7
    assert ar["bytes"] == 5 * 4 + 3 * 4 + 1000 * 4 + 3 * 2 * 2
    assert ar["wire_bytes"] == round(2 * (n - 1) / n * 20) + 3 * round(2 * (n - 1) / n * 4) + round(
        2 * (n - 1) / n * 4000) + 2 * round(2 * (n - 1) / n * 6)
    assert s["reduce_scatter/world"]["bytes"] == 6 * n * 8
    assert s["reduce_scatter/world"]["wire_bytes"] == round((n - 1) / n * 6 * n * 8)


def test_exception_on_one_rank_ends_job_with_its_traceback():
    t = time.monotonic()
    _, p = run_mpi(4, "fail.py", "raise", expect_ok=False, timeout=60)
    assert p.returncode != 0
    assert time.monotonic() - t < 10
    assert "[ember rank 1] uncaught exception" in p.stderr and "ValueError: boom on rank 1" in p.stderr


def test_watchdog_names_collective_and_missing_rank():
    _, p = run_mpi(4, "fail.py", "skip", 2, expect_ok=False, timeout=60)
    assert p.returncode != 0
    assert "watchdog: collective 'all_reduce'" in p.stderr
    assert "ranks that did not arrive: [2]" in p.stderr


def test_mismatched_sizes_across_ranks_raise_clear_error():
    _, p = run_mpi(2, "fail.py", "mismatch", expect_ok=False, timeout=60)
    assert p.returncode != 0
    assert "all_reduce: ranks of group 'world' passed different tensors" in p.stderr
