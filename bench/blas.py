"""Which sgemm compiled matmuls should call: library.c's `ember_matmul` bound to MKL and to NumPy's
OpenBLAS, on W5 and on the products of a W1 / W3 training step, warm and with cold operands.

"Cold" sweeps a 64 MiB buffer before each call, as a training step does between products (the
kernels before a product evict its operands); the sweep's own time, measured alone, is subtracted.
Usage: `python bench/blas.py` (needs the `mkl` wheel: `pip install ember[mkl]`).
"""

from __future__ import annotations

import argparse

import numpy as np
from common import busy_note, compare, machine_header, spread, table

import ember  # noqa: F401  (sets the thread-pool spin variables before NumPy's BLAS starts)
from ember.compiler import library

# (name, M, K, N, weight-transposed?): forward products read a transposed (out, in) weight
SHAPES = [("W5 1024^3", 1024, 1024, 1024, False),
          ("W1 fc1 fwd", 128, 784, 512, True), ("W1 fc1 dW", 512, 128, 784, False),
          ("W1 fc2 fwd", 128, 512, 512, True),
          ("W3 qkv fwd", 2048, 128, 384, True), ("W3 fc fwd", 2048, 128, 512, True),
          ("W3 proj fwd", 2048, 512, 128, True), ("W3 fc dW", 512, 2048, 128, False)]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    lib = library.load()
    names = [n for n in ("mkl", "openblas") if library.find_blas(n) is not None]
    if lib is None or len(names) < 2:
        raise SystemExit(f"bench/blas.py needs library.c and both BLASes; found {names or 'none'} "
                         "(pip install ember[mkl] for MKL)")
    rng = np.random.default_rng(0)
    sweep = np.ones(64 << 20, np.uint8)
    rows = []
    for label, M, K, N, wt in SHAPES:
        a = rng.standard_normal((M, K), dtype=np.float32)
        b = rng.standard_normal((N, K), dtype=np.float32).T if wt else rng.standard_normal((K, N), dtype=np.float32)
        want = a @ b
        variants = {}
        for name in names:
            def call(name=name, a=a, b=b):
                library.use_blas(name)
                return library.matmul(lib, a, b)
            np.testing.assert_allclose(call(), want, rtol=1e-4, atol=1e-3)
            variants[f"{name} warm"] = call
            variants[f"{name} cold"] = lambda call=call: (sweep.__iadd__(1), call())
        variants["sweep"] = lambda: sweep.__iadd__(1)
        times = compare(variants, reps=args.reps, repeats=args.repeats)
        flop = 2 * M * K * N
        for temp in ("warm", "cold"):
            t = {n: times[f"{n} {temp}"].median - (times["sweep"].median if temp == "cold" else 0) for n in names}
            gf = {n: flop / t[n] / 1e9 for n in names}
            rows.append([f"{label} ({M}x{K}x{N})", temp, f"{gf['mkl']:.0f} ({spread(times[f'mkl {temp}'])})",
                         f"{gf['openblas']:.0f} ({spread(times[f'openblas {temp}'])})",
                         f"{gf['mkl'] / gf['openblas']:.2f}x"])
    print(machine_header())
    print()
    print(table("library.c matmul (all threads): GFLOP/s under each BLAS; ratio = MKL / OpenBLAS",
                ["product", "operands", "MKL GFLOP/s", "OpenBLAS GFLOP/s", "ratio"], rows,
                [f"median of {args.repeats} repeats x {args.reps} calls after 3 warm-up calls; cold = after a "
                 "64 MiB sweep, the sweep's time subtracted"] + busy_note(times.values())))


if __name__ == "__main__":
    main()
