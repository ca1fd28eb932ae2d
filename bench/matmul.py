"""W5 `matmul`: 1024x1024 @ 1024x1024 float32, GFLOP/s of ember against NumPy's BLAS and PyTorch.

ember's matmul is an OPAQUE op calling NumPy, so ember/NumPy measures dispatch overhead
(expected ~1.0x); torch runs its own BLAS (MKL on x86), the real ceiling per BENCHMARKS.md.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import busy_note, compare, machine_header, spread, table

import ember


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    n = args.n
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((n, n), dtype=np.float32)
    b_np = rng.standard_normal((n, n), dtype=np.float32)
    a_em, b_em = ember.tensor(a_np), ember.tensor(b_np)
    a_th, b_th = torch.from_numpy(a_np), torch.from_numpy(b_np)
    # same inputs everywhere, and the same answer (to float32 rounding)
    ref = a_np.astype(np.float64) @ b_np.astype(np.float64)
    for got in ((a_em @ b_em).numpy(), a_np @ b_np, (a_th @ b_th).numpy()):
        np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3 * np.sqrt(n))

    def run_ember():
        with ember.no_grad():
            a_em @ b_em

    times = compare({"ember": run_ember, "numpy": lambda: a_np @ b_np, "torch": lambda: a_th @ b_th},
                    reps=args.reps, repeats=args.repeats)
    gflops = {k: 2 * n**3 / t.median / 1e9 for k, t in times.items()}
    rows = []
    for var, ref_name in (("ember", "numpy"), ("ember", "torch"), ("numpy", "torch")):
        rows.append([f"W5 matmul {n}x{n} f32", var, ref_name,
                     f"{gflops[var]:.4g} ({spread(times[var])})",
                     f"{gflops[ref_name]:.4g} ({spread(times[ref_name])})",
                     f"{gflops[var] / gflops[ref_name]:.2f}x"])
    print(machine_header(torch))
    print()
    print(table("matmul: GFLOP/s (spread over repeats); ratio = variant GFLOP/s / reference GFLOP/s, "
                "higher is better",
                ["workload", "variant", "reference", "variant GFLOP/s", "reference GFLOP/s", "ratio"], rows,
                [f"median of {args.repeats} repeats x {args.reps} calls after 3 warm-up calls"]
                + busy_note(times.values())))


if __name__ == "__main__":
    main()
