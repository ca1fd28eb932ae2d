"""Where a compiled training step's time goes: each step of the replayed plan timed, summed by kind
(library products, attention, fused kernels, library ops by name, the optimizer update), and with
`--kernels` the slowest fused kernels with the ops they compute.

Usage: `python bench/profile_plan.py [--workload mlp|cnn|gpt-train] [--steps 30] [--kernels]`.
"""

from __future__ import annotations

import argparse
import collections
import time

from common import machine_header
from compile import build


def _label(step) -> str:
    """A plan step's kind: its closure's name, or the registry op an `op_step` closure runs."""
    cells = dict(zip(step.__code__.co_freevars, step.__closure__ or ()))
    if step.__name__ == "step" and "fwd" in cells:
        return "op:" + cells["fwd"].cell_contents.__qualname__.split(".")[0]
    if step.__name__ == "run_kernel" and "fn" in cells:
        return "kernel:" + cells["fn"].cell_contents.__name__
    return step.__name__


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", choices=["mlp", "cnn", "gpt-train"], default="gpt-train")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--kernels", action="store_true", help="list the 20 slowest fused kernels")
    args = p.parse_args(argv)
    variants, _ = build(args.workload)
    call, compiled = variants["compiled"]
    for _ in range(3):
        call()
    entry = next(iter(compiled.entries.values()))
    plan, report = entry.plan, entry.report
    total: dict = collections.defaultdict(float)
    count: collections.Counter = collections.Counter()

    def timed(step, label):
        def run(env):
            t = time.perf_counter()
            step(env)
            total[label] += time.perf_counter() - t
            count[label] += 1
        return run
    plan.steps = [timed(s, _label(s)) for s in plan.steps]
    t0 = time.perf_counter()
    for _ in range(args.steps):
        call()
    per_step = (time.perf_counter() - t0) / args.steps
    print(machine_header())
    print(f"{args.workload}: {per_step * 1e3:.1f} ms per compiled step, {args.steps} steps")
    kinds: dict = collections.defaultdict(float)
    calls: collections.Counter = collections.Counter()
    for label, t in total.items():
        kind = "fused kernels" if label.startswith("kernel:") else label
        kinds[kind] += t
        calls[kind] += count[label]
    for kind, t in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:28s} {t / args.steps * 1e3:8.2f} ms  {calls[kind] // args.steps:4d} calls")
    if args.kernels:
        ops = {f"k{i}": names for i, names in report["groups"]}
        print("slowest fused kernels:")
        slow = sorted(((t, label[7:]) for label, t in total.items() if label.startswith("kernel:")), reverse=True)
        for t, name in slow[:20]:
            print(f"  {name:6s} {t / args.steps * 1e3:6.2f} ms  {' '.join(ops.get(name, []))}")


if __name__ == "__main__":
    main()
