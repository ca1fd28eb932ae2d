"""Large elementwise and reduction chains on 1M float32 elements (1024x1024): ember eager vs torch eager.

Each op here streams 4 MB through memory, so this measures kernel speed (NumPy's
single-threaded ufuncs against PyTorch's vectorized, multi-threaded ones), not dispatch.
The compiler's fused kernels are meant to close this gap.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import busy_note, compare, fmt_time, machine_header, spread, table

import ember


def gate(x, a, b):
    """6 elementwise ops: (x * a + b).tanh() * x.sigmoid() + 0.5."""
    return (x * a + b).tanh() * x.sigmoid() + 0.5


def softmax_rows(x):
    """softmax over the last dim written out: amax, sub, exp, sum, div."""
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def reductions(x):
    """sum, mean over rows, amax over rows, variance over rows, logsumexp over rows."""
    return x.sum(), x.mean(-1), x.amax(-1), x.var(-1), x.logsumexp(-1)


def layer_norm_rows(x):
    """(x - mean) / sqrt(var + eps) over the last dim, written with ops (no fused kernel)."""
    m = x.mean(-1, keepdim=True)
    c = x - m
    return c / ((c * c).mean(-1, keepdim=True) + 1e-5).sqrt()


WORKLOADS = {
    "gate: 6 elementwise": (gate, 3),
    "softmax rows": (softmax_rows, 1),
    "layer_norm rows": (layer_norm_rows, 1),
    "5 reductions": (reductions, 1),
}


def _loss(out):
    outs = out if isinstance(out, tuple) else (out,)
    total = outs[0].sum()
    for o in outs[1:]:
        total = total + o.sum()
    return total


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--cols", type=int, default=1024)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-backward", action="store_true", help="time forward passes only")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    shape = (args.rows, args.cols)
    arrays = [rng.standard_normal(shape, dtype=np.float32) for _ in range(3)]
    rows = []
    all_times = []
    for name, (fn, n_in) in WORKLOADS.items():
        em = [ember.tensor(a, requires_grad=True) for a in arrays[:n_in]]
        th = [torch.tensor(a, requires_grad=True) for a in arrays[:n_in]]
        # same answer before timing
        for e, t in zip(_as_tuple(fn(*em)), _as_tuple(fn(*th))):
            np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=1e-3, atol=1e-3)

        def forward(lib, ts, fn=fn):
            def run():
                with lib.no_grad():
                    fn(*ts)
            return run

        def fwd_bwd(ts, fn=fn):
            def run():
                for t in ts:
                    t.grad = None
                _loss(fn(*ts)).backward()
            return run

        variants = {"ember fwd": forward(ember, em), "torch fwd": forward(torch, th)}
        if not args.no_backward:
            variants |= {"ember fwd+bwd": fwd_bwd(em), "torch fwd+bwd": fwd_bwd(th)}
        times = compare(variants, reps=args.reps, repeats=args.repeats)
        all_times += times.values()
        for what in ("fwd", "fwd+bwd"):
            if f"ember {what}" not in times:
                continue
            e, t = times[f"ember {what}"], times[f"torch {what}"]
            rows.append([f"{name} {what}", "ember", "torch", f"{fmt_time(e.median)} ({spread(e)})",
                         f"{fmt_time(t.median)} ({spread(t)})", f"{e.median / t.median:.2f}x"])
    print(machine_header(torch))
    print()
    print(table(f"elementwise/reduction chains on {args.rows}x{args.cols} float32; "
                "ratio = ember time / torch time, lower is better",
                ["workload", "variant", "reference", "ember", "torch", "ratio"], rows,
                [f"median of {args.repeats} repeats x {args.reps} calls after 3 warm-up calls"]
                + busy_note(all_times)))


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


if __name__ == "__main__":
    main()
