"""MNIST and CIFAR-10 readers: the real MNIST test set, IDX parsing, synthetic CIFAR-10 binary files,
and downloads with checksums (over file:// URLs: this machine has no network)."""

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.data import DataLoader
from ember.data.datasets import CIFAR10, MNIST, read_idx
from ember.data.datasets._download import DownloadError, check_integrity, download_url
from ember.data.transforms import ToTensor

MNIST_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


def idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D}[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder: Path, prefix: str, n: int, gz: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(arr)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return images, labels


@pytest.fixture(scope="module")
def mnist_test():
    return MNIST(MNIST_DIR, train=False)


def test_real_mnist_test_set(mnist_test):
    m = mnist_test
    assert len(m) == 10000
    assert m.data.shape == (10000, 28, 28) and m.data.dtype is ember.uint8
    assert m.targets.dtype is ember.int64
    img, label = m[0]
    assert label == 7 and img.shape == (28, 28) and img.dtype == np.uint8
    assert m.targets.numpy()[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(m.targets.numpy()).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert img.max() == 255 and img.min() == 0 and 0 < (img > 0).mean() < 0.5  # a digit, not noise


def test_real_mnist_through_a_loader_with_to_tensor():
    m = MNIST(MNIST_DIR, train=False, transform=ToTensor())
    x, y = next(iter(DataLoader(m, batch_size=16)))
    assert x.shape == (16, 1, 28, 28) and x.dtype is ember.float32 and y.dtype is ember.int64
    raw = MNIST(MNIST_DIR, train=False)
    np.testing.assert_allclose(x.numpy()[3, 0], raw[3][0] / 255.0, rtol=1e-6)
    fast = next(iter(DataLoader(raw, batch_size=16)))  # the gather fast path
    np.testing.assert_array_equal(fast[0].numpy(), raw.data.numpy()[:16])
    np.testing.assert_array_equal(fast[1].numpy(), y.numpy())


def test_train_split_missing_names_the_files():
    with pytest.raises(FileNotFoundError) as exc:
        MNIST(MNIST_DIR, train=True)
    msg = str(exc.value)
    assert "train-images-idx3-ubyte" in msg and "train-labels-idx1-ubyte" in msg and str(MNIST_DIR) in msg


def test_read_idx_raw_gz_and_torchvision_layout(tmp_path):
    images, labels = write_mnist(tmp_path / "MNIST" / "raw", "train", 5, gz=False)
    m = MNIST(tmp_path, train=True)
    np.testing.assert_array_equal(m.data.numpy(), images)
    np.testing.assert_array_equal(m.targets.numpy(), labels)
    arr = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    (tmp_path / "x.idx").write_bytes(idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx"), arr)
    (tmp_path / "bad.idx").write_bytes(idx_bytes(arr)[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "bad.idx")
    (tmp_path / "junk.idx").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "junk.idx")


def test_checksum_logic_on_local_files(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"ember")
    assert check_integrity(f, md5=hashlib.md5(b"ember").hexdigest())
    assert check_integrity(f, sha256=hashlib.sha256(b"ember").hexdigest())
    assert not check_integrity(f, md5="0" * 32)
    assert not check_integrity(tmp_path / "missing.bin")


def test_download_verifies_the_checksum(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.gz").write_bytes(b"payload")
    url = (src / "f.gz").as_uri()
    good = hashlib.sha256(b"payload").hexdigest()
    out = download_url(url, tmp_path / "dst", sha256=good)
    assert out.read_bytes() == b"payload"
    with pytest.raises(DownloadError, match="expected") as exc:
        download_url(url, tmp_path / "dst2", md5="0" * 32)
    assert url in str(exc.value)
    assert not any((tmp_path / "dst2").iterdir())  # the bad file was not kept


def test_mnist_download_from_a_mirror_with_md5(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    images, labels = write_mnist(mirror, "t10k", 4)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in mirror.iterdir()}
    monkeypatch.setattr(MNIST, "resources", {**MNIST.resources, **md5})
    monkeypatch.setattr(MNIST, "mirrors", [mirror.as_uri() + "/"])
    m = MNIST(tmp_path / "root", train=False, download=True)
    np.testing.assert_array_equal(m.data.numpy(), images)
    assert (tmp_path / "root" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").is_file()


def test_failed_download_names_the_url_and_root(tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/mnist/"])  # nothing listens on port 9
    root = tmp_path / "nowhere"
    with pytest.raises(DownloadError) as exc:
        MNIST(root, train=False, download=True)
    msg = str(exc.value)
    assert "http://127.0.0.1:9/mnist/t10k-images-idx3-ubyte.gz" in msg and str(root) in msg
    # checksum mismatch from a mirror is an error too
    mirror = tmp_path / "mirror"
    write_mnist(mirror, "t10k", 2)
    monkeypatch.setattr(MNIST, "mirrors", [mirror.as_uri() + "/"])
    with pytest.raises(DownloadError, match="md5"):
        MNIST(tmp_path / "root2", train=False, download=True)


# --- CIFAR-10 (binary version) -----------------------------------------------------------------


def cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    chw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    raw = np.concatenate([labels[:, None], chw.reshape(n, -1)], axis=1).tobytes()
    return raw, chw, labels


def test_cifar10_reads_the_binary_format(tmp_path):
    base = tmp_path / "cifar-10-batches-bin"
    base.mkdir()
    raw, chw, labels = cifar_records(7, 0)
    (base / "test_batch.bin").write_bytes(raw)
    ds = CIFAR10(tmp_path, train=False)
    assert len(ds) == 7 and ds.data.shape == (7, 32, 32, 3)
    img, label = ds[2]
    assert label == labels[2]
    # HWC: pixel (r, c) of channel k is byte 1 + k*1024 + r*32 + c of the record
    assert img[5, 9, 1] == raw[2 * 3073 + 1 + 1024 + 5 * 32 + 9]
    np.testing.assert_array_equal(ToTensor()(img).numpy(), chw[2] / np.float32(255))
    with pytest.raises(FileNotFoundError, match="data_batch_1.bin"):
        CIFAR10(tmp_path, train=True)
    (base / "test_batch.bin").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="record size"):
        CIFAR10(tmp_path, train=False)


def test_cifar10_download_checks_md5_and_sha256_and_extracts(tmp_path, monkeypatch):
    buf = io.BytesIO()
    parts = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
            raw, _, labels = cifar_records(2, i)
            parts[name] = labels
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(buf.getvalue())
    monkeypatch.setattr(CIFAR10, "url", archive.as_uri())
    monkeypatch.setattr(CIFAR10, "md5", hashlib.md5(buf.getvalue()).hexdigest())
    monkeypatch.setattr(CIFAR10, "sha256", hashlib.sha256(buf.getvalue()).hexdigest())
    ds = CIFAR10(tmp_path / "root", train=True, download=True)
    assert len(ds) == 10
    np.testing.assert_array_equal(ds.targets.numpy()[:2], parts["data_batch_1.bin"])
    monkeypatch.setattr(CIFAR10, "sha256", "0" * 64)
    with pytest.raises(DownloadError, match="sha256"):
        CIFAR10(tmp_path / "root3", train=True, download=True)
