"""One-hot gathers: `gather` and `scatter_add` whose index holds one entry along `dim` per row
(cross-entropy picking each row's target log-probability, and that pick's backward) rewritten as
elementwise ops and a reduction over an iota, so fusion puts them in the kernels around them:

    gather(x, dim, idx)          ->  sum(where(idx == iota, x, 0), dim, keepdim=True)
    scatter_add(x, dim, idx, s)  ->  x + where(idx == iota, s, 0)

`iota` is a constant holding 0 .. n-1 along `dim` (n = x.shape[dim]). Each row selects exactly one
element, so the sum adds one value to zeros and is exact (but for the sign of a zero: -0.0 reads as
0.0): log-softmax and the pick become one row kernel, the pick's backward joins log-softmax's
backward. A guard that every index lies in [0, n) comes first, unless the graph has one already
(cross-entropy checks its target itself): out of range, the replay stops and the call runs eagerly,
which raises the error eager `gather` raises (a one-hot row with no match would otherwise read 0
without a word).
"""

from __future__ import annotations

import numpy as np

from ... import dtype as dt
from ...ops.registry import REGISTRY
from ...tensor import Tensor
from ..graph import Graph, Node
from ..kernel_ir import CTYPES
from ..trace import TensorGetter


def _const(graph: Graph, array: np.ndarray, dtype) -> int:
    """A constant value holding `array` (captured like a traced constant: read at every replay)."""
    t = Tensor._make(np.array(array, dtype.np, order="C"), dtype)  # (ascontiguousarray makes 0-d 1-d)
    vid = graph.new_value(t.shape, dtype, "const")
    graph.values[vid].strides = t._data.strides
    graph.externals[vid] = TensorGetter(t, f"const {tuple(t.shape)}")
    return vid


def _node(graph: Graph, nodes: list, name: str, inputs: list, attrs: dict, shape, dtype, out=None) -> int:
    if out is None:
        out = graph.new_value(shape, dtype, "node")
    nodes.append(Node(REGISTRY[name], list(inputs), attrs, [out]))
    return out


def _one_per_row(graph: Graph, n) -> bool:
    """gather/scatter_add along `dim` with an integer index of size 1 there and x's size elsewhere."""
    if n.n_attr_inputs or len(n.outs) != 1:
        return False
    x, idx = (graph.values[v] for v in n.inputs[:2])
    dim = n.attrs["dim"]
    if idx.dtype.category != 1 or x.dtype not in CTYPES or x.dtype.category != 2 or idx.shape[dim] != 1 or \
            x.shape[dim] == 0 or any(i != s for d, (i, s) in enumerate(zip(idx.shape, x.shape)) if d != dim):
        return False
    return n.name == "gather" or graph.values[n.inputs[2]].shape == idx.shape


def _const_is(graph: Graph, vid: int, value) -> bool:
    v = graph.values[vid]
    return v.source == "const" and v.shape == () and bool(np.asarray(graph.externals[vid].get()) == value)


def index_guards(graph: Graph) -> dict:
    """{index value: n} for each guard checking that any((idx < 0) | (idx >= n)) stays False (the
    range checks of cross-entropy's target and of embedding's input): such an index is known to
    lie in [0, n) whenever the replay gets past the guard."""
    where = {o: n for n in graph.nodes for o in n.outs}
    found = {}
    for n in graph.nodes:
        if n.name != "guard_bool" or n.attrs["expected"] is not False:
            continue
        red = where.get(n.inputs[0])
        if red is None or red.name != "any" or red.attrs.get("keepdim"):
            continue
        orn = where.get(red.inputs[0])
        if orn is None or orn.name != "bitwise_or" or \
                len(red.attrs["dims"] or ()) != len(graph.values[red.inputs[0]].shape):
            continue
        lo, hi = (where.get(v) for v in orn.inputs)
        if lo is not None and hi is not None and lo.name == "lt" and hi.name == "ge" and \
                lo.inputs[0] == hi.inputs[0] and _const_is(graph, lo.inputs[1], 0) and \
                graph.values[hi.inputs[1]].source == "const" and graph.values[hi.inputs[1]].shape == ():
            found[lo.inputs[0]] = int(np.asarray(graph.externals[hi.inputs[1]].get()))
    return found


def _guard(graph: Graph, nodes: list, idx_id: int, size: int, op: str) -> None:
    """Append nodes checking that any((idx < 0) | (idx >= size)) stays False."""
    idx = graph.values[idx_id]
    low = _node(graph, nodes, "lt", [idx_id, _const(graph, np.array(0), idx.dtype)], {}, idx.shape, dt.bool_)
    high = _node(graph, nodes, "ge", [idx_id, _const(graph, np.array(size), idx.dtype)], {}, idx.shape, dt.bool_)
    bad = _node(graph, nodes, "bitwise_or", [low, high], {}, idx.shape, dt.bool_)
    anyb = _node(graph, nodes, "any", [bad], {"dims": tuple(range(len(idx.shape))), "keepdim": False}, (), dt.bool_)
    nodes.append(Node("guard_bool", [anyb], {"expected": False,
                                             "where": f"the {op} index check (an index outside [0, {size}))"}, []))


def onehot(graph: Graph) -> int:
    """Rewrite every one-entry-per-row gather and scatter_add (see the module docstring); returns how
    many. The new nodes go right after the last of their inputs' producers, not where the gather
    was: cross-entropy checks its target before log-softmax, so the pick then directly follows
    log-softmax and joins its row kernel (fusion merges adjacent row-wise groups only)."""
    where = {o: i for i, n in enumerate(graph.nodes) for o in n.outs}  # value -> producing node index
    guards = index_guards(graph)
    after: dict = {}  # node index (-1: the start) -> new nodes to place after it
    rewritten = set()
    for i, n in enumerate(graph.nodes):
        if n.name not in ("gather", "scatter_add") or not _one_per_row(graph, n):
            continue
        rewritten.add(i)
        x_id, idx_id = n.inputs[:2]
        x, idx = graph.values[x_id], graph.values[idx_id]
        dim, size = n.attrs["dim"], x.shape[n.attrs["dim"]]
        at_idx, checked = where.get(idx_id, -1), idx_id
        src = graph.nodes[at_idx] if at_idx >= 0 else None
        if src is not None and src.name == "reshape" and not src.n_attr_inputs:  # (N,) seen as (N, 1)
            checked = src.inputs[0]
            at_idx = where.get(checked, -1)
            idx_id = _node(graph, after.setdefault(at_idx, []), "reshape", [checked], {"shape": idx.shape},
                           idx.shape, idx.dtype)
            graph.values[idx_id].strides = idx.strides  # the traced reshape's layout
        if guards.get(checked) != size:
            _guard(graph, after.setdefault(at_idx, []), idx_id, size, n.name)
        nodes = after.setdefault(max([at_idx] + [where.get(v, -1) for v in n.inputs if v != n.inputs[1]]), [])
        iota = _const(graph, np.arange(size).reshape([size if d == dim else 1 for d in range(len(x.shape))]),
                      idx.dtype)
        hit = _node(graph, nodes, "eq", [idx_id, iota], {}, x.shape, dt.bool_)
        zero = _const(graph, np.array(0), x.dtype)
        if n.name == "gather":
            picked = _node(graph, nodes, "where", [hit, x_id, zero], {}, x.shape, x.dtype)
            _node(graph, nodes, "sum", [picked], {"dims": (dim,), "keepdim": True}, idx.shape, x.dtype,
                  out=n.outs[0])
        else:
            put = _node(graph, nodes, "where", [hit, n.inputs[2], zero], {}, x.shape, x.dtype)
            _node(graph, nodes, "add", [x_id, put], {}, x.shape, x.dtype, out=n.outs[0])
    if rewritten:
        out = list(after.get(-1, []))
        for i, n in enumerate(graph.nodes):
            if i not in rewritten:
                out.append(n)
            out += after.get(i, [])
        graph.nodes[:] = out
    return len(rewritten)
