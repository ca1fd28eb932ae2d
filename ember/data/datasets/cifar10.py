"""CIFAR-10 from the binary version ('cifar-10-batches-bin': fixed-length records, no pickle).

Each record is 1 label byte and 3072 pixel bytes (1024 red, 1024 green, 1024 blue, row-major 32 x 32).
Samples are `(image, label)`: image a (32, 32, 3) uint8 NumPy array (HWC, like torchvision's `.data`),
label an int.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np

from ... import dtype as dt
from ...tensor import Tensor
from ._arrays import ArrayImageDataset
from ._download import DownloadError, download_url

RECORD_BYTES = 1 + 3 * 32 * 32


def read_cifar_bin(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch file -> images (N, 32, 32, 3) uint8, labels (N,) int64."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise ValueError(f"CIFAR10: {path} has {raw.size} bytes, not a positive multiple of the record size "
                         f"{RECORD_BYTES} (1 label byte + 3072 pixel bytes); the file is truncated or not "
                         "from the binary version")
    rec = raw.reshape(-1, RECORD_BYTES)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(f"CIFAR10: {path} has label {labels.max()}, expected 0-9 (is this CIFAR-100?)")
    images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


class CIFAR10(ArrayImageDataset):
    """CIFAR-10: 50,000 training or 10,000 test colour images (32 x 32) in 10 classes.

    Reads `root/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`; `download=True` fetches the
    binary archive, checks its MD5 and SHA-256, and extracts only those files. `.data` is a
    (N, 32, 32, 3) uint8 tensor, `.targets` a (N,) int64 tensor."""

    url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    archive = "cifar-10-binary.tar.gz"
    md5 = "c32a1d4ab5d03f1284b67883e8d87530"
    sha256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
    folder = "cifar-10-batches-bin"
    train_files = [f"data_batch_{i}.bin" for i in range(1, 6)]
    test_files = ["test_batch.bin"]
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root: str | os.PathLike, train: bool = True, download: bool = False, transform=None,
                 target_transform=None):
        self.root = Path(root).expanduser()
        self.train = train
        self.transform, self.target_transform = transform, target_transform
        names = self.train_files if train else self.test_files
        base = self.root / self.folder
        if download and not all((base / n).is_file() for n in names):
            self._download()
        missing = [n for n in names if not (base / n).is_file()]
        if missing:
            raise FileNotFoundError(f"CIFAR10: missing {', '.join(missing)} in {base}. Hint: pass "
                                    "download=True, or extract the binary version (cifar-10-binary.tar.gz) "
                                    f"into {self.root}")
        parts = [read_cifar_bin(base / n) for n in names]
        self._images = np.concatenate([p[0] for p in parts])
        self._labels = np.concatenate([p[1] for p in parts])
        meta = base / "batches.meta.txt"
        if meta.is_file():
            names = [line.strip() for line in meta.read_text().splitlines() if line.strip()]
            if len(names) == 10:
                self.classes = names
        self.data = Tensor._make(self._images, dt.uint8)
        self.targets = Tensor._make(self._labels, dt.int64)

    def _download(self) -> None:
        try:
            path = download_url(self.url, self.root, self.archive, md5=self.md5, sha256=self.sha256)
        except DownloadError as e:
            raise DownloadError(f"CIFAR10: download into {self.root} failed: {e}") from e
        wanted = {f"{self.folder}/{n}" for n in [*self.train_files, *self.test_files, "batches.meta.txt"]}
        with tarfile.open(path, "r:gz") as tar:
            # Only the expected regular files: never trust member paths from an archive.
            members = [m for m in tar.getmembers() if m.name in wanted and m.isfile()]
            for m in members:
                dest = self.root / m.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as src, open(dest, "wb") as out:
                    out.write(src.read())
