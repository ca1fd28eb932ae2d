"""`ember run -n N script.py`: start N ranks through mpiexec (the MPICH that the mpich wheel installs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def find_mpiexec() -> str:
    """mpiexec beside this Python (a venv with the mpich wheel), else the first on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.exists(here):
        return here
    found = shutil.which("mpiexec") or shutil.which("mpirun")
    if found is None:
        raise FileNotFoundError("ember run: no mpiexec found. Install the MPI wheels (`pip install mpich mpi4py`, "
                                "part of ember's dependencies) or put a system MPI's mpiexec on PATH")
    return found


def command(n: int, target: list[str], module: bool = False, hosts: str | None = None,
            hostfile: str | None = None) -> list[str]:
    """The mpiexec command line for N ranks of `python script.py args` (or `python -m module args`)."""
    if n < 1:
        raise ValueError(f"ember run: -n must be at least 1, got {n}")
    cmd = [find_mpiexec(), "-n", str(n)]
    if hosts:
        cmd += ["-hosts", hosts]
    if hostfile:
        cmd += ["-f", hostfile]
    cmd += [sys.executable, "-u"] + (["-m"] if module else []) + target
    return cmd


def launch(n: int, target: list[str], module: bool = False, hosts: str | None = None,
           hostfile: str | None = None, timeout: float | None = None) -> int:
    """Run the job and return its exit code (non-zero if any rank failed)."""
    env = dict(os.environ)
    if timeout is not None:
        env["EMBER_TIMEOUT"] = str(timeout)
    env.setdefault("OMP_NUM_THREADS", "1")  # N ranks on one machine: one BLAS thread each
    return subprocess.call(command(n, target, module, hosts, hostfile), env=env)
