"""The cpu device: buffers are NumPy arrays, kernels call NumPy (and its BLAS for matmul)."""

from __future__ import annotations

import ctypes
import sys

import numpy as np


def keep_freed_buffers() -> bool:
    """Make glibc reuse freed large buffers instead of unmapping them (returns whether it applied).

    By default glibc serves allocations over 128 KiB with fresh mmap()s and returns them on free,
    so every NumPy temporary of a few MB page-faults its way in again: an eager chain of six
    elementwise ops on 1M floats ran 2.4x slower that way (measured: 8.9 ms vs 3.7 ms). Raising
    the mmap and trim thresholds keeps freed memory in the heap for the next op, as PyTorch's
    caching allocators do. A no-op off glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, (1 << 31) - 1))
    except (OSError, AttributeError):
        return False


class CPUBackend:
    """Kernels receive `xp` (this backend's array namespace: NumPy).

    Creating the backend (once, when ember.devices loads) tunes the allocator: see keep_freed_buffers."""

    type = "cpu"
    xp = np
    ndarray = np.ndarray

    def __init__(self):
        self.allocator_tuned = keep_freed_buffers()

    def asarray(self, data, np_dtype):
        """A buffer of `np_dtype` holding `data` (copied only if needed)."""
        return np.asarray(data, dtype=np_dtype)

    def to_numpy(self, buf) -> np.ndarray:
        return buf

    def empty(self, shape, np_dtype):
        return np.empty(shape, dtype=np_dtype)

    def blas_info(self) -> str:
        """Which BLAS NumPy links and the kernel it runs (for `ember info` and benchmark headers)."""
        from .blas import describe
        return describe()
