"""Per-op overhead: a chain of 1,000 small ops on 16x16 float32 tensors, forward and forward+backward.

Tiny tensors make the kernels nearly free, so this measures what each op costs in dispatch,
autograd recording and the backward engine: ember time / torch eager time.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import busy_note, compare, fmt_time, machine_header, spread, table

import ember

OPS_PER_STEP = 4  # matmul, add (broadcast bias), tanh, mul


def chain(x, w, b, s, steps: int):
    """`steps` x (matmul, add, tanh, mul), then a sum: works on ember and torch tensors alike."""
    y = x
    for _ in range(steps):
        y = (y @ w + b).tanh() * s
    return y.sum()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", type=int, default=1000)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    steps, n = args.ops // OPS_PER_STEP, args.size
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((n, n), dtype=np.float32),
              (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32),
              rng.standard_normal(n, dtype=np.float32) * 0.1,
              rng.uniform(0.9, 1.1, (n, n)).astype(np.float32)]
    em = [ember.tensor(a, requires_grad=True) for a in arrays]
    th = [torch.tensor(a, requires_grad=True) for a in arrays]

    def fwd_bwd(lib, ts):
        def run():
            for t in ts:
                t.grad = None
            chain(*ts, steps).backward()
        return run

    def fwd(lib, ts):
        def run():
            with lib.no_grad():
                chain(*ts, steps)
        return run

    # the same numbers first: loss and the gradient of x
    fwd_bwd(ember, em)()
    fwd_bwd(torch, th)()
    np.testing.assert_allclose(em[0].grad.numpy(), th[0].grad.numpy(), rtol=1e-3, atol=1e-4)

    times = compare({"ember fwd": fwd(ember, em), "torch fwd": fwd(torch, th),
                     "ember fwd+bwd": fwd_bwd(ember, em), "torch fwd+bwd": fwd_bwd(torch, th)},
                    reps=args.reps, repeats=args.repeats)
    n_ops = steps * OPS_PER_STEP + 1
    rows = []
    for what in ("fwd", "fwd+bwd"):
        e, t = times[f"ember {what}"], times[f"torch {what}"]
        rows.append([f"{n_ops} ops {n}x{n} {what}", "ember", "torch",
                     f"{fmt_time(e.median)} ({spread(e)})", f"{fmt_time(t.median)} ({spread(t)})",
                     f"{fmt_time(e.median / n_ops)}", f"{fmt_time(t.median / n_ops)}",
                     f"{e.median / t.median:.2f}x"])
    print(machine_header(torch))
    print()
    print(table("overhead: time per chain (spread over repeats); ratio = ember time / torch time, "
                "lower is better",
                ["workload", "variant", "reference", "ember", "torch", "ember/op", "torch/op", "ratio"], rows,
                [f"ops per step: matmul, add, tanh, mul; median of {args.repeats} repeats x {args.reps} "
                 "calls"] + busy_note(times.values())))


if __name__ == "__main__":
    main()
