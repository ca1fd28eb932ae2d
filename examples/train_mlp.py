"""Train a 2-layer MLP on MNIST digits with nothing but ember tensors, autograd and a hand-written SGD step.

    python examples/train_mlp.py            # first 2,000 test-set images of ../shared/data/mnist
    python examples/train_mlp.py --epochs 10 --hidden 256

Reads the MNIST idx files with gzip + NumPy; if they are missing, it trains on a synthetic
task of the same shape instead (labels from a random "teacher" network), so it always runs.
`ember train` will replace this script once ember.nn and ember.optim exist.
"""

from __future__ import annotations

import argparse
import gzip
import math
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

import ember

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def read_idx(path: Path) -> np.ndarray:
    """An idx file (MNIST's format: big-endian magic, dims, then uint8 data) as a NumPy array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(dims))


def load_mnist(root: Path, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The first `n` images of the MNIST test set: x (n, 784) float32 in [0, 1], y (n,) int64."""
    images, labels = root / "t10k-images-idx3-ubyte.gz", root / "t10k-labels-idx1-ubyte.gz"
    if not (images.exists() and labels.exists()):
        return None
    x = read_idx(images)[:n].reshape(-1, 784).astype(np.float32) / 255.0
    y = read_idx(labels)[:n].astype(np.int64)
    return x, y


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in with MNIST's shapes: x (n, 784) in [0, 1] = a noisy copy of one of 10 random
    sparse "digit" images (a fifth of the pixels on), y (n,) = which one."""
    rng = np.random.default_rng(seed)
    prototypes = (rng.uniform(0, 1, size=(10, 784)) < 0.2).astype(np.float64)
    y = rng.integers(0, 10, size=n)
    x = np.clip(prototypes[y] + rng.normal(0, 0.5, size=(n, 784)), 0, 1)
    return x.astype(np.float32), y.astype(np.int64)


def init_params(hidden: int) -> list[ember.Tensor]:
    """W1 (784, hidden), b1 (hidden,), W2 (hidden, 10), b2 (10,): Kaiming-uniform-like init."""
    def layer(fan_in, fan_out):
        bound = 1 / math.sqrt(fan_in)
        w = (ember.rand(fan_in, fan_out) * 2 - 1) * bound
        b = (ember.rand(fan_out) * 2 - 1) * bound
        return [w.requires_grad_(), b.requires_grad_()]
    return layer(784, hidden) + layer(hidden, 10)


def forward(params: list[ember.Tensor], x: ember.Tensor) -> ember.Tensor:
    """x (B, 784) -> logits (B, 10)."""
    w1, b1, w2, b2 = params
    return (x @ w1 + b1).relu() @ w2 + b2


def cross_entropy(logits: ember.Tensor, y: ember.Tensor) -> ember.Tensor:
    """Mean over the batch of -log softmax(logits)[y]; logits (B, C), y (B,) int64 -> scalar."""
    picked = logits.gather(1, y.unsqueeze(1)).squeeze(1)
    return (logits.logsumexp(1) - picked).mean()


def accuracy(params, x: ember.Tensor, y: ember.Tensor) -> float:
    with ember.no_grad():
        return (forward(params, x).argmax(1) == y).float().mean().item()


def train(n: int = 2000, epochs: int = 10, batch_size: int = 50, hidden: int = 128, lr: float = 0.1,
          data: Path = DEFAULT_DATA, seed: int = 0, progress: bool = True) -> list[float]:
    """Train on the first 80% of `n` examples, report accuracy on the rest; returns per-epoch mean losses."""
    ember.manual_seed(seed)
    loaded = load_mnist(data, n)
    if loaded is None:
        print(f"MNIST not found under {data}; training on a synthetic task of the same shape",
              file=sys.stderr)
        loaded = synthetic(n, seed)
    x_all, y_all = ember.tensor(loaded[0]), ember.tensor(loaded[1])
    split = int(0.8 * len(loaded[1]))
    x, y, x_val, y_val = x_all[:split], y_all[:split], x_all[split:], y_all[split:]
    params = init_params(hidden)
    steps = math.ceil(split / batch_size)
    losses = []
    for epoch in range(epochs):
        order = ember.randperm(split)
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        total = 0.0
        for i in bar:
            idx = order[i * batch_size:(i + 1) * batch_size]
            loss = cross_entropy(forward(params, x[idx]), y[idx])
            loss.backward()
            with ember.no_grad():  # the SGD step: p <- p - lr * grad
                for p in params:
                    p -= p.grad * lr
                    p.grad = None
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        losses.append(total / steps)
        acc = accuracy(params, x_val, y_val)
        print(f"epoch {epoch + 1}: train loss {losses[-1]:.4f}  val accuracy {acc:.3f}")
    return losses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="examples to use (80%% train, 20%% validation)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the MNIST t10k-*.gz files")
    args = p.parse_args(argv)
    losses = train(args.n, args.epochs, args.batch_size, args.hidden, args.lr, args.data)
    if not losses[-1] < losses[0]:
        print(f"loss did not fall: {losses[0]:.4f} -> {losses[-1]:.4f}", file=sys.stderr)
        return 1
    print(f"loss fell from {losses[0]:.4f} to {losses[-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
