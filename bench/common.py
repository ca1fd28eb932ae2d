"""Shared benchmark plumbing: side-by-side timing, the machine header and the result table.

Per BENCHMARKS.md: warm up, time at least 20 calls, repeat 3 times, report the median and the
spread, and compare with a reference timed in the same run. Variants are interleaved (repeat 1
of every variant, then repeat 2, ...) so a slow phase of a shared machine hits all of them alike.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

# Both BLAS/OpenMP pools (NumPy's OpenBLAS, torch's and ember's OpenMP) busy-wait after each job by
# default; in one process timing ember and torch alternately, each pool's spinning threads then
# slow the other library down (torch's matmul ran 3x slower right after NumPy's). The libraries
# read these once, at load, and a benchmark imports NumPy before this module: so re-run the
# process once with short waits set (ember sets the same when it is imported first: _threadpools).
SPIN_VARS = {"OPENBLAS_THREAD_TIMEOUT": "4", "GOMP_SPINCOUNT": "100000"}
_RUN_AS_SCRIPT = Path(sys.argv[0]).resolve().parent == Path(__file__).resolve().parent  # not under pytest
if _RUN_AS_SCRIPT and any(k not in os.environ for k in SPIN_VARS) and os.environ.get("EMBER_BENCH_REEXEC") != "1":
    os.environ.update({k: os.environ.get(k, v) for k, v in SPIN_VARS.items()}, EMBER_BENCH_REEXEC="1")
    os.execv(sys.executable, [sys.executable, *sys.argv])

BLAS_HINT_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                  "MKL_NUM_THREADS", *SPIN_VARS)


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median over repeats, and each repeat's value."""

    median: float
    repeats: tuple[float, ...]

    @property
    def spread(self) -> float:
        """(max - min) / median over the repeats, as a fraction."""
        return (max(self.repeats) - min(self.repeats)) / self.median


def compare(variants: dict, reps: int = 20, repeats: int = 3, warmup: int = 3) -> dict[str, Timing]:
    """Time each zero-argument callable in `variants` (name -> fn), interleaved; seconds per call."""
    if reps < 20 or repeats < 3:
        raise ValueError(f"compare: BENCHMARKS.md asks for >= 20 reps and >= 3 repeats, got {reps} reps, "
                         f"{repeats} repeats")
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            samples[name].append((time.perf_counter() - t0) / reps)
    return {name: Timing(statistics.median(s), tuple(s)) for name, s in samples.items()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _threadpools() -> list[str]:
    """The BLAS/OpenMP libraries loaded in this process and their kernels (threadpoolctl, if installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["threadpoolctl not installed (pip install threadpoolctl to list loaded BLAS kernels)"]
    rows = []
    for lib in threadpool_info():
        arch = f", kernel {lib['architecture']}" if lib.get("architecture") else ""
        rows.append(f"{lib['internal_api']} {lib.get('version') or ''} ({os.path.basename(lib['filepath'])}"
                    f"{arch}, {lib['num_threads']} threads)")
    return rows


def _torch_blas(torch_module) -> str:
    """PyTorch's BLAS and the SIMD level its kernels use, read from its build record."""
    cfg = torch_module.__config__.show()
    fields = cfg.replace(",", " ").split()
    blas = next((f.split("=", 1)[1] for f in fields if f.startswith("BLAS_INFO=")), "?")
    simd = next((line.split(":", 1)[1].strip() for line in cfg.splitlines() if "CPU capability" in line), "?")
    return f"BLAS {blas}, CPU capability {simd}, {torch_module.get_num_threads()} threads"


def machine_header(torch_module=None) -> str:
    """Cores, CPU, BLAS (NumPy's and what is loaded), versions and the env vars that change BLAS speed."""
    import numpy as np

    import ember
    from ember.devices.blas import blas_info

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    blas = blas_info()
    lines = [
        f"machine : {_cpu_model()}, {usable} usable of {os.cpu_count()} cores",
        f"versions: ember {ember.__version__}, python {platform.python_version()}, numpy {np.__version__}"
        + (f", torch {torch_module.__version__}" if torch_module is not None else ""),
        f"numpy   : {blas['name']} {blas['version']}, kernel {blas.get('kernel', '?')}, "
        f"{blas.get('threads', '?')} threads",
        "env     : " + ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in BLAS_HINT_VARS),
    ]
    if torch_module is not None:
        lines.append(f"torch   : {_torch_blas(torch_module)}")
    lines += [f"loaded  : {row}" for row in _threadpools()]
    return "\n".join(lines)


def fmt_time(seconds: float) -> str:
    """A duration with a unit that keeps 3 significant digits: `12.3 us`, `4.56 ms`, `1.20 s`."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def table(title: str, header: list[str], rows: list[list[str]], notes: list[str] = ()) -> str:
    """A plain-text table with a title line and notes under it."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths)))
    out = [title, line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    out += list(notes)
    return "\n".join(out)


def busy_note(times, limit: float = 0.2) -> list[str]:
    """A warning line when any spread exceeds `limit`: the machine was busy, rerun before quoting."""
    worst = max(times, key=lambda t: t.spread)
    if worst.spread <= limit:
        return []
    return [f"WARNING: a spread of {100 * worst.spread:.0f}% (> {100 * limit:.0f}%): the machine was busy "
            "during this run; rerun before quoting these ratios"]


def spread(t: Timing) -> str:
    """The spread over repeats as a percentage of the median: (max - min) / median."""
    return f"{100 * t.spread:.1f}%"
