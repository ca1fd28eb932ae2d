"""`ember run -n N script.py [args]` / `ember run -n N -m module [args]`: start an MPI job of N ranks.

A thin front to mpiexec (see ember/distributed/launcher.py): the job exits non-zero if any
rank fails, and `--timeout S` sets how long a collective may wait before the watchdog ends it.
"""

from __future__ import annotations

import argparse
import sys

NAME = "run"
HELP = "start N ranks of a script or module through mpiexec"


def add_arguments(parser) -> None:
    parser.add_argument("-n", "--nproc", type=int, required=True, help="number of ranks")
    hosts = parser.add_mutually_exclusive_group()
    hosts.add_argument("--hosts", help="comma-separated host names (default: this machine)")
    hosts.add_argument("--hostfile", help="an MPI host file")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds a collective may wait before the watchdog ends the job (default 300)")
    parser.add_argument("-m", dest="module", action="store_true", help="run TARGET as a module (python -m)")
    parser.add_argument("target", help="script path, or module name with -m")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")


def run(args) -> int:
    from ..distributed.launcher import launch

    if args.nproc < 1:
        print(f"ember run: -n must be at least 1, got {args.nproc}", file=sys.stderr)
        return 2
    try:
        return launch(args.nproc, [args.target, *args.args], module=args.module, hosts=args.hosts,
                      hostfile=args.hostfile, timeout=args.timeout)
    except FileNotFoundError as e:
        print(str(e), file=sys.stderr)
        return 2
