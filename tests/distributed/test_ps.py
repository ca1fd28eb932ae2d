"""D8: the parameter server keeps SSP's staleness bound; s = 0 equals synchronous data parallelism."""

import os

import numpy as np
import pytest

from .mpi import run_mpi

MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "mnist")


def _server_weights(res, servers):
    """Reassemble the parameter list from the servers' round-robin shards."""
    shards = [res[s][0]["weights"] for s in range(servers)]
    total = sum(len(s) for s in shards)
    return [shards[i % servers][i // servers] for i in range(total)]


def test_ssp_with_zero_staleness_equals_synchronous_data_parallel():
    ddp, _ = run_mpi(3, "ps_mlp.py", "ddp", 0, 0, 25)
    ps, _ = run_mpi(5, "ps_mlp.py", "ssp", 2, 0, 25)  # 2 servers, 3 workers
    for got, want in zip(_server_weights(ps, 2), ddp[0][0]["weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert all(entry[3] == 0 for entry in ps[0][0]["log"])


@pytest.mark.parametrize("s", [1, 3])
def test_no_worker_ever_reads_parameters_more_than_s_clocks_stale(s):
    res, _ = run_mpi(5, "ps_mlp.py", "ssp", 2, s, 40)
    for server in (0, 1):
        log = res[server][0]["log"]
        assert len(log) == 3 * 40  # every pull of every worker was served and logged
        worst = max(entry[3] for entry in log)
        assert worst <= s
    # slow and fast workers really drifted apart, so the bound was exercised
    assert max(entry[3] for entry in res[0][0]["log"]) >= 1
    for w in (2, 3, 4):  # stale momentum slows learning, but it learns
        losses = res[w][0]["losses"]
        assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5])


def test_asp_never_waits_and_still_learns():
    res, _ = run_mpi(4, "ps_mlp.py", "asp", 1, 0, 40)
    assert res[0][0]["version"] == 3 * 40  # one optimizer step per push
    for w in (1, 2, 3):
        losses = res[w][0]["losses"]
        assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


@pytest.mark.slow
def test_mnist_mlp_through_ssp_parameter_server_reaches_95_percent():
    os.environ["EMBER_MNIST"] = os.path.abspath(MNIST)
    res, _ = run_mpi(3, "ps_mlp.py", "ssp", 1, 2, 1500, "mnist", timeout=600)
    for w in (1, 2):
        assert res[w][0]["accuracy"] >= 0.95
