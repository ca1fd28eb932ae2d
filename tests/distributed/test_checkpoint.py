"""ZeRO checkpoints: one shard per rank plus an index, loadable at another world size."""

import os

import numpy as np
import pytest

from ember.distributed.checkpoint import consolidate, read_index
from ember.errors import CheckpointError

from .mpi import run_mpi


def test_save_at_4_load_at_2_and_1_saves_identical_state_and_resumes(tmp_path):
    d4, d2, d1 = (str(tmp_path / f"n{n}") for n in (4, 2, 1))
    ref, _ = run_mpi(4, "zero_ckpt.py", "save", d4)
    assert sorted(os.listdir(d4)) == ["index.json"] + [f"shard-0000{r}-of-00004.safetensors" for r in range(4)]
    got2, _ = run_mpi(2, "zero_ckpt.py", "load", d4, d2)
    got1, _ = run_mpi(1, "zero_ckpt.py", "load", d2, d1)
    full4, sc4 = consolidate(d4)
    for d in (d2, d1):
        full, sc = consolidate(d)
        assert sc == sc4 and sorted(full) == sorted(full4)
        for k in full4:
            assert np.array_equal(full[k].numpy(), full4[k].numpy()), k
    assert read_index(d1)["world_size"] == 1
    # training continues from the checkpoint exactly as the uninterrupted 4-rank run did
    np.testing.assert_allclose(got2[0][0]["losses"], ref[0][0]["losses"], rtol=1e-5)
    np.testing.assert_allclose(got1[0][0]["losses"], ref[0][0]["losses"], rtol=1e-5)


def test_missing_shard_is_named(tmp_path):
    d = str(tmp_path / "ck")
    run_mpi(2, "zero_ckpt.py", "save", d)
    os.remove(os.path.join(d, "shard-00001-of-00002.safetensors"))
    with pytest.raises(CheckpointError, match="shard 1 of 2"):
        consolidate(d)
