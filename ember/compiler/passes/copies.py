"""Copy kernels: ops that move data rather than compute per point, lowered to loop nests of their
own (`Kernel.pieces`, `Kernel.scatter`) so their outputs get planned buffers and no NumPy call.

- `assemble_slices` (split's backward, passes/assemble.py): one loop nest per input writing it
  into its box of the output, one zero-filling loop nest per gap.
- `index_add_into` with one integer index array (`x[idx]`'s backward, embedding gradients):
  zeros, then each row of the gradient added into the row its index names, in index order, as
  NumPy's `add.at` does (so the sums round the same).
- `getitem` with one integer index array whose values a guard has checked (embedding lookups):
  each picked row copied into the output.
"""

from __future__ import annotations

import numpy as np

from ...ops.indexing import _view_as
from ..kernel_ir import Arg, Gather, Kernel, Piece, Scatter, contiguous_strides


def key_region(shape, key):
    """out[key] for a row-major `out` of `shape`, on a stand-in whose byte strides are element
    strides (never read), and its element offset in `out`."""
    base = np.empty(1, np.uint8)
    full = np.lib.stride_tricks.as_strided(base, shape=shape, strides=contiguous_strides(shape))
    r = full[key]
    if not isinstance(r, np.ndarray):  # all-int key: one element
        r = full[tuple(key) + (Ellipsis,)]
    return r, r.__array_interface__["data"][0] - base.__array_interface__["data"][0]


def _coalesce_piece(p: Piece) -> Piece:
    """Drop unit loops and merge neighbours both sides walk contiguously."""
    dims, src, dst = [], [], []
    for n, s, d in zip(p.dims, p.src_strides, p.dst_strides):
        if n == 1:
            continue
        if dims and src[-1] == s * n and dst[-1] == d * n:
            dims[-1] *= n
            src[-1], dst[-1] = s, d
            continue
        dims.append(n)
        src.append(s)
        dst.append(d)
    return Piece(tuple(dims) or (1,), p.src, tuple(src) or (0,), p.dst, tuple(dst) or (0,), p.dst_offset)


def lower_copy(graph, grp, name: str, made) -> Kernel | None:
    """assemble_slices as loop nests: each input copied into its slice of the output (written in
    the input's shape through a view of the slice), then zeros in the gaps. None when an input's
    layout is unknown or its shape is not a view of its slice."""
    n = graph.nodes[grp.members[0]]
    out = graph.values[n.outs[0]]
    k = Kernel(name, out.shape, len(out.shape), nodes=[grp.members[0]])
    pieces = []
    for vid, key in zip(n.inputs, n.attrs["keys"]):
        v = graph.values[vid]
        sb = made.get(vid, v.strides)
        if sb is None:
            return None
        if 0 in v.shape:
            continue
        r, off = key_region(out.shape, key)
        view = r if r.shape == v.shape else _view_as(np, r, v.shape)
        if view is None:
            return None
        src = tuple(s // v.dtype.itemsize for s in sb)
        k.args.append(Arg(vid, v.dtype, src))
        pieces.append(Piece(v.shape, len(k.args) - 1, src, -1, view.strides, off))
    for gap in n.attrs["gaps"]:
        r, off = key_region(out.shape, gap)
        pieces.append(Piece(r.shape, None, (0,) * r.ndim, -1, r.strides, off))
    cs = contiguous_strides(out.shape)
    k.args.append(Arg(n.outs[0], out.dtype, cs, output=True))
    k.pieces = [_coalesce_piece(Piece(p.dims, p.src, p.src_strides, len(k.args) - 1, p.dst_strides,
                                      p.dst_offset)) for p in pieces if 0 not in p.dims]
    made[n.outs[0]] = tuple(s * out.dtype.itemsize for s in cs)
    return k



def lower_scatter(graph, grp, name: str, made) -> Kernel | None:
    """index_add_into(g, shape, key=(idx,)): out = zeros(shape); out[idx[i]] += g[i] for every
    index position i, in row-major order. None when a layout is unknown or g does not have the
    shape idx.shape + shape[1:] (a broadcast gradient): the registry kernel runs it then."""
    n = graph.nodes[grp.members[0]]
    g, idx, out = (graph.values[v] for v in (n.inputs[0], n.inputs[-1], n.outs[0]))
    gs, ixs = made.get(g.id, g.strides), made.get(idx.id, idx.strides)
    if gs is None or ixs is None or g.shape != idx.shape + out.shape[1:] or 0 in g.shape:
        return None
    k = Kernel(name, out.shape, len(out.shape), nodes=[grp.members[0]])
    g_el = tuple(s // g.dtype.itemsize for s in gs)
    k.args = [Arg(g.id, g.dtype, g_el), Arg(idx.id, idx.dtype, tuple(s // idx.dtype.itemsize for s in ixs)),
              Arg(n.outs[0], out.dtype, contiguous_strides(out.shape), output=True)]
    ni = len(idx.shape)
    row = _coalesce_piece(Piece(out.shape[1:], 0, g_el[ni:], 2, contiguous_strides(out.shape)[1:], 0))
    k.scatter = Scatter(idx.shape, k.args[1].strides, g_el[:ni], out.shape[0], row.dims, row.src_strides,
                        row.dst_strides)
    made[n.outs[0]] = tuple(s * out.dtype.itemsize for s in contiguous_strides(out.shape))
    return k


def lower_gather(graph, grp, name: str, made) -> Kernel | None:
    """getitem(table, key=(idx,)): out[i] = table[idx[i]] for every index position i. None when a
    layout is unknown: the registry kernel runs it then."""
    n = graph.nodes[grp.members[0]]
    table, idx, out = (graph.values[v] for v in (n.inputs[0], n.inputs[-1], n.outs[0]))
    ts, ixs = made.get(table.id, table.strides), made.get(idx.id, idx.strides)
    if ts is None or ixs is None or 0 in out.shape:
        return None
    t_el = tuple(s // table.dtype.itemsize for s in ts)
    cs = contiguous_strides(out.shape)
    k = Kernel(name, out.shape, len(out.shape), nodes=[grp.members[0]])
    k.args = [Arg(table.id, table.dtype, t_el), Arg(idx.id, idx.dtype, tuple(s // idx.dtype.itemsize for s in ixs)),
              Arg(n.outs[0], out.dtype, cs, output=True)]
    ni = len(idx.shape)
    row = _coalesce_piece(Piece(table.shape[1:] or (1,), 0, t_el[1:] or (0,), 2, cs[ni:] or (0,), 0))
    k.gather = Gather(idx.shape, k.args[1].strides, table.shape[0], row.dims, row.src_strides, t_el[0],
                      row.dst_strides)
    made[n.outs[0]] = tuple(s * out.dtype.itemsize for s in cs)
    return k
