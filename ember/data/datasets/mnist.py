"""MNIST from its IDX files (gzipped or raw), found in any local folder or downloaded with checksums.

Samples are `(image, label)`: image a (28, 28) uint8 NumPy array (the role a PIL image plays in
torchvision; `transforms.ToTensor()` turns it into a (1, 28, 28) float tensor), label an int.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ... import dtype as dt
from ...tensor import Tensor
from ._arrays import ArrayImageDataset
from ._download import DownloadError, download_any

# IDX type codes -> big-endian NumPy dtypes.
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the format of the MNIST files; `.gz` is decompressed) into a native-endian array
    of the shape its header gives, e.g. (10000, 28, 28) uint8."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise OSError(f"read_idx: cannot read {path}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"read_idx: {path} is not an IDX file (magic bytes {raw[:4].hex()}, expected "
                         "00 00 <type> <ndim>)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(x) for x in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[raw[2]]
    n = int(np.prod(shape)) if shape else 1
    if len(raw) - header != n * dtype.itemsize:
        raise ValueError(f"read_idx: {path} holds {len(raw) - header} bytes of data, but its header "
                         f"{shape} of {dtype} needs {n * dtype.itemsize}; the file is truncated or corrupt")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


class MNIST(ArrayImageDataset):
    """The MNIST digits: 60,000 training or 10,000 test images (28 x 28, uint8) with labels 0-9.

    Looks for the IDX files (`train-images-idx3-ubyte[.gz]`, ...) in `root`, `root/MNIST/raw` and
    `root/mnist`; with `download=True`, missing files are fetched into `root/MNIST/raw` and checked
    against their published MD5. `.data` is a (N, 28, 28) uint8 tensor and `.targets` a (N,) int64
    tensor, as in torchvision."""

    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
    resources = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
               "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root: str | os.PathLike, train: bool = True, download: bool = False, transform=None,
                 target_transform=None):
        self.root = Path(root).expanduser()
        self.train = train
        self.transform, self.target_transform = transform, target_transform
        prefix = "train" if train else "t10k"
        names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        paths = [self._find(n) for n in names]
        if any(p is None for p in paths) and download:
            self._download(names)
            paths = [self._find(n) for n in names]
        missing = [n for n, p in zip(names, paths) if p is None]
        if missing:
            split = "training" if train else "test"
            raise FileNotFoundError(
                f"MNIST: the {split} split needs {', '.join(n + '[.gz]' for n in missing)}, not found in "
                f"{self.root} (also looked in {self.root / 'MNIST' / 'raw'} and {self.root / 'mnist'}). "
                + ("Hint: pass download=True, or copy the files there." if not download else ""))
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"MNIST: {paths[0]} has shape {images.shape} and {paths[1]} has {labels.shape}; "
                             "expected (N, 28, 28) images and N labels")
        self._images = images
        self._labels = labels.astype(np.int64)
        self.data = Tensor._make(self._images, dt.uint8)
        self.targets = Tensor._make(self._labels, dt.int64)

    def _folders(self) -> list[Path]:
        return [self.root, self.root / "MNIST" / "raw", self.root / "mnist"]

    def _find(self, name: str) -> Path | None:
        for folder in self._folders():
            for candidate in (folder / name, folder / (name + ".gz")):
                if candidate.is_file():
                    return candidate
        return None

    def _download(self, names: list[str]) -> None:
        raw = self.root / "MNIST" / "raw"
        for name in names:
            if self._find(name) is not None:
                continue
            gz = name + ".gz"
            try:
                download_any([m + gz for m in self.mirrors], raw, gz, md5=self.resources[gz])
            except DownloadError as e:
                raise DownloadError(f"MNIST: download of {gz} into {raw} failed (root {self.root}):\n{e}") \
                    from e
