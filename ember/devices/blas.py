"""Which BLAS the cpu device's matmul runs: library, version, the kernel chosen at run time, threads.

NumPy's build record (`numpy.show_config`) names the library it was linked with; an OpenBLAS
built with DYNAMIC_ARCH picks its kernel (Haswell, SkylakeX, ...) only when it loads, so that
part is asked of the loaded library itself through ctypes. Read by `ember info` and bench headers.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

# environment variables that change which BLAS kernel runs or how many threads it uses
BLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS", "MKL_DEBUG_CPU_TYPE")

# (symbol prefix, symbol suffix) of OpenBLAS builds: plain, and scipy-openblas (64-bit ints)
_OPENBLAS_SYMBOLS = (("", ""), ("scipy_", "64_"), ("scipy_", ""))


def _build_info() -> dict:
    """NumPy's record of the BLAS it was built against (empty on NumPy without dict mode)."""
    try:
        cfg = np.show_config(mode="dicts")
    except Exception:  # NumPy < 1.26 prints only
        return {}
    return dict(cfg.get("Build Dependencies", {}).get("blas", {}))


def _loaded_openblas_paths() -> list[str]:
    """Paths of OpenBLAS shared libraries mapped into this process (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    paths = []
    for line in lines:
        path = line.split()[-1] if len(line.split()) >= 6 else ""
        if "openblas" in os.path.basename(path).lower() and path not in paths:
            paths.append(path)
    return paths


def _query_openblas(path: str) -> dict:
    """Ask a loaded OpenBLAS for its run-time kernel (core name) and thread count."""
    try:
        # RTLD_NOLOAD: only take a handle on the copy NumPy already loaded, never load a second one
        lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_GLOBAL)
    except OSError:
        return {}
    for pre, suf in _OPENBLAS_SYMBOLS:
        try:
            corename = getattr(lib, f"{pre}openblas_get_corename{suf}")
            threads = getattr(lib, f"{pre}openblas_get_num_threads{suf}")
        except AttributeError:
            continue
        corename.restype = ctypes.c_char_p
        threads.restype = ctypes.c_int
        return {"kernel": (corename() or b"?").decode(), "threads": int(threads())}
    return {}


def blas_info() -> dict:
    """What BLAS NumPy uses, as a dict.

    Keys: `name`, `version`, `build` (the configuration string, when NumPy records one),
    `kernel` and `threads` (asked of the loaded OpenBLAS; absent for other libraries) and
    `env` (the BLAS-related environment variables that are set).
    """
    build = _build_info()
    info = {"name": build.get("name", "unknown"), "version": build.get("version", "")}
    if build.get("openblas configuration"):
        info["build"] = " ".join(build["openblas configuration"].split())
    # a matmul makes sure the library is loaded (NumPy loads it lazily on some builds)
    np.ones((2, 2)) @ np.ones((2, 2))
    for path in _loaded_openblas_paths():
        got = _query_openblas(path)
        if got:
            info.update(got)
            break
    info["env"] = {k: os.environ[k] for k in BLAS_ENV_VARS if k in os.environ}
    return info


def describe() -> str:
    """One line: `scipy-openblas 0.3.31, kernel SkylakeX, 2 threads`."""
    info = blas_info()
    parts = [f"{info['name']} {info['version']}".strip()]
    if "kernel" in info:
        parts.append(f"kernel {info['kernel']}")
    if "threads" in info:
        parts.append(f"{info['threads']} threads")
    return ", ".join(parts)


__all__ = ["blas_info", "describe", "BLAS_ENV_VARS"]
