"""Run a script under real mpiexec with N ranks and collect each rank's JSON results.

Scripts call `report(obj)` (tests/distributed/scripts/_report.py), which appends one JSON line
to `$EMBER_TEST_OUT/rank<r>.jsonl`: files, not stdout, so ranks' outputs never interleave.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from ember.distributed.launcher import command

SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")


def run_mpi(n: int, script: str, *args, timeout: float = 120, expect_ok: bool = True):
    """Start `script` on n ranks; return ({rank: [reported objects]}, completed process)."""
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, OMP_NUM_THREADS="1", EMBER_TEST_OUT=out,
                   PYTHONPATH=os.pathsep.join([SCRIPTS] + sys.path))
        cmd = command(n, [os.path.join(SCRIPTS, script), *map(str, args)])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if expect_ok and p.returncode != 0:
            raise AssertionError(f"mpiexec -n {n} {script} failed ({p.returncode}):\n{p.stdout[-3000:]}\n"
                                 f"{p.stderr[-3000:]}")
        results = {}
        for name in os.listdir(out):
            rank = int(name[len("rank"):-len(".jsonl")])
            with open(os.path.join(out, name)) as f:
                results[rank] = [json.loads(line) for line in f]
    return results, p
