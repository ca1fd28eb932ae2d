"""The error function on NumPy buffers without SciPy (the kernel behind `erf` and exact `gelu`).

float64 calls `math.erf` per element (exact, used by gradient checks); other dtypes use a
piecewise Chebyshev interpolant of degree 7 on [0.5, 6) and a Taylor series below 0.5,
accurate to a few float32 ulps and several times faster. Tables are built on first use.
"""

from __future__ import annotations

import math

import numpy as np

_LO, _HI, _WIDTH, _DEG = 0.5, 6.0, 0.5, 7
_table = None
_erf64 = np.frompyfunc(math.erf, 1, 1)


def _build_table():
    # Taylor coefficients of erf(x)/x in x^2, and Chebyshev coefficients of erf on each piece
    global _table
    if _table is None:
        series = np.array([(-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(8)])
        series *= 2 / math.sqrt(math.pi)
        nodes = np.cos(math.pi * (np.arange(_DEG + 1) + 0.5) / (_DEG + 1))
        pieces = []
        for lo in np.arange(_LO, _HI, _WIDTH):
            vals = [math.erf(lo + _WIDTH / 2 * (1 + t)) for t in nodes]
            pieces.append(np.polynomial.chebyshev.chebfit(nodes, vals, _DEG))
        _table = series.astype(np.float32), np.array(pieces, dtype=np.float32)
    return _table


def erf(x: np.ndarray) -> np.ndarray:
    """erf of a float buffer, same dtype out."""
    if x.dtype == np.float64:
        return np.asarray(_erf64(x), dtype=np.float64)
    series, table = _build_table()
    a = np.abs(x).astype(np.float32)
    out = np.ones(a.shape, np.float32)  # |x| >= 6: erf is 1 to float32 precision
    small = a < _LO
    mid = ~small & (a < _HI)
    s_in = a[small]
    z = s_in * s_in
    s = np.full(s_in.shape, series[-1])
    for c in series[-2::-1]:
        s = s * z + c
    out[small] = s * s_in
    m_in = a[mid]
    j = ((m_in - _LO) * (1 / _WIDTH)).astype(np.intp)
    np.clip(j, 0, table.shape[0] - 1, out=j)
    t = (m_in - _LO - j * _WIDTH) * (2 / _WIDTH) - 1
    coef = table[j]  # (n, _DEG + 1): the coefficients of each element's piece
    b1, b2 = np.zeros_like(t), np.zeros_like(t)
    for k in range(_DEG, 0, -1):  # Clenshaw's recurrence
        b1, b2 = 2 * t * b1 - b2 + coef[:, k], b1
    out[mid] = t * b1 - b2 + coef[:, 0]
    out[np.isnan(a)] = np.nan
    return np.copysign(out, x).astype(x.dtype, copy=False)
