"""Kernel IR: one fused kernel as a loop nest over index expressions, independent of any language.

A Kernel has loop extents `dims` (outer to inner), buffer arguments each with an element
stride per loop (0 where it broadcasts), a list of scalar temporaries computed per point
(`lets`, expression trees over loads, constants and op names), stores of temporaries to
outputs, and optionally a reduction of one temporary over the inner `dims[n_outer:]`. A copy
kernel (assemble_slices) is instead a list of Pieces: loop nests copying inputs into boxes of
its output; a scatter-add kernel (index_add_into) a Scatter; a row-gather kernel (`table[idx]`,
embedding lookups) a Gather. A row kernel is a list of phases,
Kernels over the same outer loops run one after another for each outer point (layer norm's mean,
then its variance, then the normalised output, for each row while it is in cache).
codegen_c.py renders it as C; an OpenCL or CUDA renderer would read the same structure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import dtype as dt

CTYPES = {dt.float32: "float", dt.float64: "double", dt.bool_: "unsigned char", dt.int64: "long long",
          dt.int32: "int"}

# op name -> number of inputs, for the elementwise ops kernels can compute (codegen_c renders them)
POINTWISE = {
    "add": 2, "sub": 2, "mul": 2, "div": 2, "maximum": 2, "minimum": 2, "pow": 2,
    "eq": 2, "ne": 2, "lt": 2, "le": 2, "gt": 2, "ge": 2, "where": 3, "cast": 1,
    "neg": 1, "abs": 1, "exp": 1, "log": 1, "sqrt": 1, "rsqrt": 1, "reciprocal": 1, "tanh": 1,
    "sigmoid": 1, "relu": 1, "silu": 1, "sin": 1, "cos": 1, "expm1": 1, "log1p": 1, "gelu": 1,
    "clamp": 1, "logical_not": 1, "bitwise_not": 1, "copy": 1, "contiguous": 1,
    "gelu_backward": 2, "threshold_backward": 2, "tanh_backward": 2, "sigmoid_backward": 2,
    "logical_and": 2, "logical_or": 2, "bitwise_and": 2, "bitwise_or": 2, "bitwise_xor": 2,
    "isinf": 1, "isnan": 1, "isfinite": 1,
}
REDUCTIONS = {"sum", "amax", "amin", "any", "all"}


@dataclass
class Arg:
    """A buffer the kernel reads or writes: graph value `vid`, C-independent element type, strides."""

    vid: int
    dtype: object
    strides: tuple  # elements, one per loop of the kernel
    output: bool = False
    order: tuple | None = None  # outputs: dim order of the buffer's layout (None: row-major)


@dataclass
class Kernel:
    """A loop nest; see the module docstring. Expressions are tuples:
    ("load", arg), ("const", value, dtype), ("tmp", k), ("etmp", k), ("red",),
    ("op", name, (args...), attrs, input dtypes)."""

    name: str
    dims: tuple
    n_outer: int
    args: list = field(default_factory=list)
    lets: list = field(default_factory=list)  # (dtype, expr)
    stores: list = field(default_factory=list)  # (arg index, tmp index)
    reduce: tuple | None = None  # (op name, tmp index, arg index, accumulator dtype)
    nodes: list = field(default_factory=list)  # graph node indices it computes
    column: bool = False  # the innermost loop is kept, not reduced: accumulate rows (codegen_c)
    column_outer: int = 0  # column kernels: how many leading kept loops lie outside the reduced ones
    epilogue: list = field(default_factory=list)  # (dtype, expr) after the reduction; ("red",) is its value
    epi_stores: list = field(default_factory=list)  # (arg index, epilogue index)
    pieces: list = field(default_factory=list)  # copy kernels: Piece loop nests, run one after another
    scatter: Scatter | None = None  # a scatter-add kernel (args: gradient, index, output)
    gather: Gather | None = None  # a row-gather kernel (args: table, index, output)
    phases: list = field(default_factory=list)  # a row kernel: Kernels run in turn for each outer point

    def bytes_moved(self) -> int:
        """Bytes each argument occupies once: what a kernel that reads each input once moves."""
        if self.phases:  # a value one phase stores and a later one reads is counted once
            seen: dict = {}
            for p in self.phases:
                for a in p.args:
                    size = math.prod(d for d, s in zip(p.dims, a.strides) if s != 0) * a.dtype.itemsize
                    seen[a.vid] = max(seen.get(a.vid, 0), size)
            return sum(seen.values())
        if self.pieces:
            return sum(math.prod(p.dims) * self.args[p.dst].dtype.itemsize * (1 if p.src is None else 2)
                       for p in self.pieces)
        if self.scatter is not None:
            g, idx, out = self.args
            n = math.prod(self.scatter.idx_dims)
            return (n * math.prod(self.scatter.row_dims) * g.dtype.itemsize + n * idx.dtype.itemsize
                    + math.prod(self.dims) * out.dtype.itemsize)
        if self.gather is not None:  # each picked row read once, the index, the output
            table, idx, out = self.args
            n = math.prod(self.gather.idx_dims)
            return n * idx.dtype.itemsize + 2 * math.prod(self.dims) * out.dtype.itemsize
        return sum(math.prod(d for d, s in zip(self.dims, a.strides) if s != 0) * a.dtype.itemsize
                   for a in self.args)


@dataclass
class Gather:
    """A row-gather kernel: for every index position i (row-major over `idx_dims`),
    `out[i, :] = table[idx[i], :]` (rows of `n_rows`; a negative index counts from the end). The
    caller guarantees the indices are in range (a guard checks them first). args[0] is the table,
    args[1] the index, args[2] the contiguous output; element strides."""

    idx_dims: tuple
    idx_strides: tuple
    n_rows: int
    row_dims: tuple
    table_row_strides: tuple
    table_stride0: int  # elements between consecutive table rows
    out_row_strides: tuple


@dataclass
class Scatter:
    """A scatter-add kernel: `out = 0`, then for every index position i (row-major over
    `idx_dims`), `out[idx[i], :] += g[i, :]` (rows of `n_rows`; rows outside are skipped).
    args[0] is g, args[1] the index, args[2] the output; element strides."""

    idx_dims: tuple
    idx_strides: tuple
    g_idx_strides: tuple  # g's strides along the index dims
    n_rows: int
    row_dims: tuple
    g_row_strides: tuple
    out_row_strides: tuple


@dataclass
class Piece:
    """One loop nest of a copy kernel (assemble_slices): `dst[dst_offset + i . dst_strides] =
    src[i . src_strides]` over `dims`, or 0 where `src` is None (a gap). Element strides."""

    dims: tuple
    src: int | None  # arg index
    src_strides: tuple
    dst: int
    dst_strides: tuple
    dst_offset: int


def broadcast_strides(shape, strides_bytes, itemsize: int, domain) -> tuple:
    """Element strides of an array of `shape` broadcast (right-aligned) into `domain`."""
    off = len(domain) - len(shape)
    out = []
    for d, size in enumerate(domain):
        i = d - off
        if i < 0 or shape[i] == 1 and size != 1:
            out.append(0)
        else:
            out.append(strides_bytes[i] // itemsize)
    return tuple(out)


def contiguous_strides(shape) -> tuple:
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= s
    return tuple(reversed(out))


def coalesce(k: Kernel) -> Kernel:
    """Merge adjacent loops every argument walks contiguously (fewer, longer loops vectorize better)."""
    dims, strides = list(k.dims), [list(a.strides) for a in k.args]
    # loops merge within a group only: the kept loops outside a column reduction, the other kept ones,
    # the reduced ones
    groups = [(0, k.column_outer), (k.column_outer, k.n_outer), (k.n_outer, len(dims))]
    new_dims, new_strides, n_outer = [], [[] for _ in k.args], 0
    for gi, (lo, hi) in enumerate(groups):
        start = len(new_dims)
        for d in range(lo, hi):
            if dims[d] == 1 and hi - lo > 1:
                continue
            if len(new_dims) > start and all(
                    s[-1] == st[d] * dims[d] for s, st in zip(new_strides, strides)):
                new_dims[-1] *= dims[d]
                for s, st in zip(new_strides, strides):
                    s[-1] = st[d]
                continue
            new_dims.append(dims[d])
            for s, st in zip(new_strides, strides):
                s.append(st[d])
        if gi == 0:
            column_outer = len(new_dims)
        elif gi == 1:
            n_outer = len(new_dims)
        elif k.reduce is not None and len(new_dims) == n_outer:
            new_dims.append(1)  # keep one (trivial) reduction loop
            for s in new_strides:
                s.append(0)
    for a, s in zip(k.args, new_strides):
        a.strides = tuple(s)
    k.dims, k.n_outer, k.column_outer = tuple(new_dims), n_outer, column_outer
    return k
