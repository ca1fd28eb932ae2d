"""What `ember train --data X` trains on: image classification sets and text corpora as datasets.

Images become normalised float32 (N, C, H, W) TensorDatasets; text becomes LMDataset windows of
token ids. MNIST with only the t10k files present (the shared data folder) is split 8,000 / 2,000.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..creation import from_numpy
from ..data import Dataset, TensorDataset
from ..data.datasets import CIFAR10, MNIST, CharTokenizer, LMDataset, load_corpus
from .config import TrainConfig, TrainError

# ../shared/data relative to the repository root (the folder holding the `ember` package)
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MNIST_TRAIN_FROM_TEST = 8000  # with only t10k present: first 8,000 train, last 2,000 held out
IMAGE_STATS = {"mnist": ((0.1307,), (0.3081,)),
               "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}


@dataclass
class Task:
    """kind 'classify' (x: images, y: class ids) or 'lm' (x, y: token windows shifted by one)."""

    kind: str
    name: str
    train: Dataset
    val: Dataset
    model_fields: dict[str, Any] = field(default_factory=dict)  # config fields the data decides
    tokenizer: Any = None
    note: str = ""


def _normalise(images: np.ndarray, name: str) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W), standardised per channel."""
    x = images.astype(np.float32) / 255.0
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    mean, std = IMAGE_STATS[name]
    x = (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
    return np.ascontiguousarray(x)


def _tensors(images: np.ndarray, labels: np.ndarray, name: str) -> TensorDataset:
    return TensorDataset(from_numpy(_normalise(images, name)), from_numpy(labels.astype(np.int64)))


def _mnist(cfg: TrainConfig) -> Task:
    root = Path(cfg.data_dir).expanduser() if cfg.data_dir else SHARED_DATA / "mnist"
    if not root.is_dir() and not cfg.download:
        raise TrainError(f"MNIST folder {root} not found: pass --data-dir DIR holding the MNIST IDX files "
                         "(t10k-images-idx3-ubyte.gz, ...), or add --download")
    try:
        test = MNIST(root, train=False, download=cfg.download)
    except (OSError, ValueError) as e:
        raise TrainError(f"MNIST in {root}: {_first_line(e)}; pass --data-dir DIR or --download") from None
    try:
        train = MNIST(root, train=True, download=False)
    except FileNotFoundError:
        train = None
    if train is not None:
        return Task("classify", "mnist", _tensors(train._images, train._labels, "mnist"),
                    _tensors(test._images, test._labels, "mnist"), dict(in_channels=1, image_size=28,
                                                                        num_classes=10, in_features=784))
    k = MNIST_TRAIN_FROM_TEST
    return Task("classify", "mnist", _tensors(test._images[:k], test._labels[:k], "mnist"),
                _tensors(test._images[k:], test._labels[k:], "mnist"),
                dict(in_channels=1, image_size=28, num_classes=10, in_features=784),
                note=f"MNIST: only the t10k set found in {root}: training on its first {k} images, "
                     f"evaluating on the last {len(test) - k}")


def _cifar10(cfg: TrainConfig) -> Task:
    root = Path(cfg.data_dir).expanduser() if cfg.data_dir else SHARED_DATA / "cifar10"
    if not root.is_dir() and not cfg.download:
        raise TrainError(f"CIFAR-10 folder {root} not found: pass --data-dir DIR holding "
                         "cifar-10-batches-bin/, or add --download")
    try:
        train = CIFAR10(root, train=True, download=cfg.download)
        test = CIFAR10(root, train=False, download=False)
    except (OSError, ValueError) as e:
        raise TrainError(f"CIFAR-10 in {root}: {_first_line(e)}; pass --data-dir DIR or --download") from None
    fields = dict(in_channels=3, image_size=32, num_classes=10, in_features=3 * 32 * 32)
    return Task("classify", "cifar10", _tensors(train._images, train._labels, "cifar10"),
                _tensors(test._images, test._labels, "cifar10"), fields)


def _text(cfg: TrainConfig, block_size: int) -> Task:
    name = cfg.data
    if name not in ("shakespeare", "stdlib"):
        path = Path(name).expanduser()
        if path.is_dir():
            raise TrainError(f"--data {name} is a folder: pass a UTF-8 text file, or one of mnist, cifar10, "
                             "shakespeare, stdlib")
        if not path.is_file():
            raise TrainError(f"--data {name}: no such dataset or file; expected mnist, cifar10, shakespeare, "
                             "stdlib or the path of a UTF-8 text file")
    data_dir = cfg.data_dir if cfg.data_dir else (SHARED_DATA if name == "shakespeare" else None)
    if name == "shakespeare" and data_dir is not None and not Path(data_dir).expanduser().exists():
        raise TrainError(f"shakespeare: data folder {data_dir} not found; pass --data-dir DIR holding "
                         "tinyshakespeare.txt")
    try:
        text = load_corpus(name, None, data_dir=data_dir)
        train_text = load_corpus(name, "train", data_dir=data_dir)
        val_text = load_corpus(name, "val", data_dir=data_dir)
    except FileNotFoundError as e:
        raise TrainError(f"{_first_line(e)}") from None
    except UnicodeDecodeError:
        raise TrainError(f"--data {name}: not a UTF-8 text file") from None
    tok = CharTokenizer.from_text(text)
    need = block_size + 1
    if len(train_text) <= need or len(val_text) <= need:
        raise TrainError(f"--data {name}: {len(text)} characters is too short for block size {block_size} "
                         f"(each split needs more than {need}); use a longer text or a smaller --block-size")
    return Task("lm", os.path.basename(name), LMDataset(tok.encode(train_text), block_size),
                LMDataset(tok.encode(val_text), block_size), dict(vocab_size=tok.vocab_size),
                tokenizer=tok)


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def build_task(cfg: TrainConfig, block_size: int = 128) -> Task:
    """The train/val datasets of cfg.data (block_size: the context of language-model windows)."""
    if cfg.data == "mnist":
        return _mnist(cfg)
    if cfg.data == "cifar10":
        return _cifar10(cfg)
    return _text(cfg, block_size)


def data_kind(data: str) -> str:
    """'classify' for image sets, 'lm' for corpora and text files (decided without loading anything)."""
    return "classify" if data in ("mnist", "cifar10") else "lm"
