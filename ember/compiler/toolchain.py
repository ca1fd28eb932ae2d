"""Build C source into a shared library through the system compiler, with an on-disk cache.

The cache (EMBER_CACHE_DIR, default ~/.cache/ember) is keyed by a hash of the source, the
compiler and the flags. A build writes to a unique temporary name and renames it into place,
so processes compiling the same kernels at once never see a half-written library.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-ffp-contract=off", "-fno-math-errno",
         "-std=c99")
COMPILERS = ("cc", "gcc", "clang")
LIBS = ("-lmvec", "-lm")
CC_OVERRIDE: str | None = None  # tests set a path here (or "" for "no compiler")
stats = {"builds": 0, "cache_hits": 0}


class CompileError(RuntimeError):
    """The C compiler rejected generated code; the message holds the source and its complaint."""


def find_compiler() -> str | None:
    """Path of the first of cc, gcc, clang on PATH (or CC_OVERRIDE), None if there is none."""
    if CC_OVERRIDE is not None:
        return CC_OVERRIDE or None
    for name in COMPILERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def cache_dir() -> str:
    return os.environ.get("EMBER_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "ember")


def library_path(source: str, cc: str) -> str:
    key = hashlib.sha256("\0".join((source, os.path.basename(cc)) + FLAGS).encode()).hexdigest()[:32]
    return os.path.join(cache_dir(), f"ember_{key}.so")


_loaded: dict = {}


def build(source: str) -> ctypes.CDLL:
    """Compile `source` (or reuse the cached build) and load it."""
    cc = find_compiler()
    if cc is None:
        raise FileNotFoundError("no C compiler (cc, gcc or clang) on PATH")
    path = library_path(source, cc)
    if path in _loaded:
        return _loaded[path]
    if os.path.exists(path):
        stats["cache_hits"] += 1
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp_c = tempfile.mkstemp(suffix=".c", dir=os.path.dirname(path))
        tmp_so = tmp_c[:-2] + ".so"
        try:
            with os.fdopen(fd, "w") as f:
                f.write(source)
            proc = subprocess.run([cc, *FLAGS, tmp_c, "-o", tmp_so, *LIBS], capture_output=True, text=True)
            if proc.returncode != 0:
                raise CompileError(f"C compiler {cc} failed on generated kernels:\n{proc.stderr.strip()}\n"
                                   f"--- generated source ---\n{source}")
            os.replace(tmp_so, path)
            stats["builds"] += 1
        finally:
            for p in (tmp_c, tmp_so):
                if os.path.exists(p):
                    os.remove(p)
    # how long idle OpenMP threads spin before sleeping was set when ember was imported
    # (GOMP_SPINCOUNT, ember/_threadpools.py): libgomp reads it when this first library loads it
    lib = ctypes.CDLL(path)
    _loaded[path] = lib
    return lib
