"""`ember info`: the versions, devices, BLAS, threads and C compiler this installation sees.

Paste its output into a bug report; benchmark headers print the same facts.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys

NAME = "info"
HELP = "print versions, devices, BLAS, thread count and C compiler"

# the C compilers the compiler layer may use, in the order it looks for them
C_COMPILERS = ("cc", "gcc", "clang")
EMBER_ENV_VARS = ("EMBER_DEBUG", "EMBER_DEBUG_DIR", "EMBER_CACHE_DIR", "EMBER_TIMEOUT", "EMBER_BLAS")


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def c_compiler() -> dict | None:
    """The first C compiler on PATH: {'name', 'path', 'version'} (first line of `--version`), or None."""
    for name in C_COMPILERS:
        path = shutil.which(name)
        if path is None:
            continue
        try:
            res = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10,
                                 stdin=subprocess.DEVNULL)
            version = (res.stdout or res.stderr).strip().splitlines()[0] if res.returncode == 0 else "?"
        except (OSError, subprocess.TimeoutExpired, IndexError):
            version = "?"
        return {"name": name, "path": path, "version": version}
    return None


def compiled_blas() -> dict | None:
    """The sgemm compiled matmuls call (ember/compiler/library.py): {'name', 'path'}, or None."""
    from ember.compiler import library
    try:
        blas = library.find_blas()
    except ValueError as e:  # a bad EMBER_BLAS: say so rather than fail
        return {"name": f"error: {e}", "path": ""}
    return {"name": blas.name, "path": blas.path} if blas is not None else None


def threads() -> dict:
    """Logical cores, the cores this process may run on, and the BLAS's thread count."""
    from ember.devices.blas import blas_info

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_count": os.cpu_count(), "usable": usable, "blas": blas_info().get("threads")}


def collect() -> dict:
    """Everything `ember info` prints, as a dict of plain values (what --json prints)."""
    import numpy as np

    import ember
    from ember.devices import available
    from ember.devices.blas import blas_info

    blas = blas_info()
    return {
        "ember": ember.__version__,
        "ember_path": os.path.dirname(ember.__file__),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "python_path": sys.executable,
        "platform": f"{platform.system()} {platform.machine()}",
        "numpy": np.__version__,
        "devices": available(),
        "blas": blas,
        "threads": threads(),
        "c_compiler": c_compiler(),
        "compiled_blas": compiled_blas(),
        "env": {k: os.environ[k] for k in EMBER_ENV_VARS if k in os.environ},
    }


def format_table(info: dict) -> str:
    """The human-readable form: one `key: value` line per fact."""
    blas = info["blas"]
    blas_line = f"{blas['name']} {blas['version']}".strip()
    if "kernel" in blas:
        blas_line += f" (kernel {blas['kernel']})"
    th = info["threads"]
    thread_line = f"{th['usable']} usable of {th['cpu_count']} cores"
    if th.get("blas") is not None:
        thread_line += f", BLAS {th['blas']} threads"
    cc = info["c_compiler"]
    rows = [
        ("ember", f"{info['ember']} ({info['ember_path']})"),
        ("python", f"{info['python']} {info['python_impl']} ({info['python_path']})"),
        ("platform", info["platform"]),
        ("numpy", info["numpy"]),
        ("devices", ", ".join(info["devices"])),
        ("blas", blas_line),
        ("blas build", blas.get("build", "-")),
        ("blas env", " ".join(f"{k}={v}" for k, v in blas["env"].items()) or "none set"),
        ("threads", thread_line),
        ("c compiler", f"{cc['version']} ({cc['path']})" if cc else "none found (compiled kernels fall back "
                                                                     "to eager)"),
        ("compiled matmul", f"{cb['name']} sgemm ({cb['path']})" if (cb := info["compiled_blas"]) else
         "no BLAS found (NumPy's matmul)"),
        ("ember env", " ".join(f"{k}={v}" for k, v in info["env"].items()) or "none set"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in rows)


def run(args) -> int:
    info = collect()
    print(json.dumps(info, indent=2) if args.json else format_table(info))
    return 0
