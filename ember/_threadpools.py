"""Keep the two CPU thread pools ember uses from fighting over the cores.

NumPy's OpenBLAS runs matmuls on its own pthreads; compiled kernels run on OpenMP (libgomp).
Both pools busy-wait after a job by default (OpenBLAS for 2**28 cycles, ~0.1 s; libgomp for
300,000 spins) so that the next job starts fast. A training step alternates the two every few
hundred microseconds, so each pool's spinning threads steal the cores the other needs: on two
cores a compiled GPT step took 190 ms this way and 138 ms with short waits (bench/compile.py).
(Compiled plans now also run BLAS on the OpenMP threads: compiler/library.c.)
Both libraries read these settings once, when they load, so this runs before NumPy is imported;
a value the user already set wins.
"""

from __future__ import annotations

import os
import sys

OPENBLAS_THREAD_TIMEOUT = "4"  # 2**4 cycles of spinning, then sleep: the minimum OpenBLAS accepts
# ~0.1 ms of spinning before an idle OpenMP thread sleeps: long enough that back-to-back compiled
# kernels find their threads awake (a W3 step: 93 ms, against 102 ms with threads that sleep at
# once, OMP_WAIT_POLICY=PASSIVE), short enough not to hold cores between steps
GOMP_SPINCOUNT = "100000"


def configure() -> dict[str, bool]:
    """Set short spin-waits for OpenBLAS and libgomp where they have not loaded yet and the user
    has not chosen; returns which of the two took effect."""
    done = {}
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", OPENBLAS_THREAD_TIMEOUT)
    done["openblas"] = os.environ.get("OPENBLAS_THREAD_TIMEOUT") is not None
    os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
    done["gomp"] = True
    return done


configured = configure()
