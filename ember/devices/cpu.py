"""The cpu device: buffers are NumPy arrays, kernels call NumPy (and its BLAS for matmul)."""

from __future__ import annotations

import numpy as np


class CPUBackend:
    """Kernels receive `xp` (this backend's array namespace: NumPy)."""

    type = "cpu"
    xp = np
    ndarray = np.ndarray

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
