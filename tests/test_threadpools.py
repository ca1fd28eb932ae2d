"""ember/_threadpools.py: `import ember` before NumPy shortens OpenBLAS's and libgomp's spin-waits,
leaves a user's own settings alone, and cannot reach OpenBLAS once NumPy has loaded it."""

import os
import subprocess
import sys

SCRIPT = "import os, {first}; import ember; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), " \
         "os.environ.get('GOMP_SPINCOUNT'), ember._threadpools.configured['openblas'])"


def _run(first: str, **env) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(first=first)], env={**clean, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_ember_first_sets_short_spin_waits():
    assert _run("sys") == ["4", "100000", "True"]


def test_a_users_settings_win():
    assert _run("sys", OPENBLAS_THREAD_TIMEOUT="20", GOMP_SPINCOUNT="7") == ["20", "7", "True"]


def test_numpy_first_leaves_openblas_alone():
    # OpenBLAS read its environment when NumPy loaded it: setting the variable now would only mislead
    assert _run("numpy") == ["None", "100000", "False"]
