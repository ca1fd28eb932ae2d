"""examples/: the scripts a user copies from must run and do what they say."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
from helpers import check_op

import ember

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"examples_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


train_mlp = _load("train_mlp")


def test_read_idx_reads_the_first_mnist_test_labels_and_images(tmp_path):
    mnist = train_mlp.DEFAULT_DATA
    if (mnist / "t10k-labels-idx1-ubyte.gz").exists():
        x, y = train_mlp.load_mnist(mnist, 5)
        assert y.tolist() == [7, 2, 1, 0, 4]  # the well-known first five test labels
        assert x.shape == (5, 784) and x.dtype == np.float32 and 0 <= x.min() and x.max() == 1.0
    # a hand-made idx file round-trips: magic 0x00000803 (uint8, 3 dims), dims, data
    import gzip
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 8, 3]) + np.array([2, 3, 4], dtype=">u4").tobytes() + data.tobytes()
    with gzip.open(tmp_path / "x.gz", "wb") as f:
        f.write(raw)
    np.testing.assert_array_equal(train_mlp.read_idx(tmp_path / "x.gz"), data)


def test_example_cross_entropy_matches_torch():
    y = np.array([3, 0, 9, 9, 1])
    check_op(lambda lib, logits, y: (train_mlp.cross_entropy(logits, y) if lib is ember
                                     else torch.nn.functional.cross_entropy(logits, y)),
             shapes=None, inputs=[np.random.default_rng(0).normal(size=(5, 10)) * 3, y])


def test_train_mlp_loss_falls_on_mnist_or_synthetic_data(capsys):
    losses = train_mlp.train(n=600, epochs=3, batch_size=50, hidden=32, lr=0.1, progress=False)
    assert len(losses) == 3
    assert losses[-1] < 0.8 * losses[0]
    assert "val accuracy" in capsys.readouterr().out


def test_train_mlp_falls_back_to_synthetic_data_when_mnist_is_missing(tmp_path, capsys):
    losses = train_mlp.train(n=400, epochs=3, batch_size=50, hidden=32, lr=0.1, data=tmp_path, progress=False)
    assert "synthetic" in capsys.readouterr().err
    assert losses[-1] < 0.8 * losses[0]


def test_train_mlp_is_reproducible_from_its_seed():
    a = train_mlp.train(n=200, epochs=1, hidden=16, progress=False, seed=3)
    b = train_mlp.train(n=200, epochs=1, hidden=16, progress=False, seed=3)
    assert a == b
