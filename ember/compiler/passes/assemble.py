"""Slice assembly: a sum of `index_add_into` nodes whose basic keys select disjoint parts of one
shape (the backward of `split`/`chunk`/`q, k, v = qkv[..., :C], ...`) becomes one `assemble_slices`
node that writes each gradient into its slice.

Each `index_add_into` allocates zeros of the full shape and writes one slice; the engine then adds
them up: n zero-fills, n slice writes and n - 1 full-size adds, where one allocation and n slice
writes do (zero-filling only when the slices leave gaps). Keys that overlap, index arrays (which
may repeat an index and accumulate) and masks are left alone.
"""

from __future__ import annotations

from ...ops.indexing import _disjoint_basic_keys, _gap_keys
from ...ops.registry import REGISTRY
from ..graph import Graph, Node


def _use_counts(graph: Graph) -> dict:
    uses: dict = {}
    for n in graph.nodes:
        for v in n.inputs:
            uses[v] = uses.get(v, 0) + 1
    for v in graph.roots():  # results handed out count as a use
        uses[v] = uses.get(v, 0) + 1
    return uses


def assemble_slices(graph: Graph) -> int:
    """Rewrite sums of disjoint-slice `index_add_into` nodes in place; returns how many sums."""
    uses = _use_counts(graph)
    vals = graph.values
    terms: dict = {}  # value id -> [(gradient value, key)] it is the sum of; shape
    absorbed: set = set()  # values consumed by a larger sum
    for n in graph.nodes:
        if n.name == "index_add_into" and not n.n_attr_inputs and len(n.outs) == 1:
            key = n.attrs["key"]
            if _disjoint_basic_keys(n.attrs["shape"], [key]):  # a basic key
                terms[n.outs[0]] = [(n.inputs[0], key)]
        elif n.name == "add" and len(n.outs) == 1 and len(n.inputs) == 2:
            a, b = n.inputs
            out = vals[n.outs[0]]
            if a == b or a not in terms or b not in terms or uses.get(a) != 1 or uses.get(b) != 1:
                continue
            if any(vals[v].shape != out.shape or vals[v].dtype is not out.dtype for v in (a, b)):
                continue
            parts = terms[a] + terms[b]
            if _disjoint_basic_keys(out.shape, [k for _, k in parts]):
                terms[n.outs[0]] = parts
                absorbed |= {a, b}
    producer = {o: n for n in graph.nodes for o in n.outs}
    count = 0
    op = REGISTRY["assemble_slices"]
    for i, n in enumerate(graph.nodes):
        out = n.outs[0] if n.name == "add" and n.outs else None
        if out is None or out in absorbed or len(terms.get(out, ())) < 2:
            continue
        parts = terms[out]
        shape, keys = vals[out].shape, tuple(k for _, k in parts)
        ins = [_unreshaped(g, producer, uses) for g, _ in parts]
        graph.nodes[i] = Node(op, ins, {"shape": shape, "keys": keys, "gaps": _gap_keys(shape, keys)}, [out])
        count += 1
    return count  # the index_add_into and add nodes it replaced are now dead (cse_dce drops them)


def _unreshaped(g: int, producer: dict, uses: dict) -> int:
    """A gradient made by `reshape` only for this assembly: its source, which assemble_slices writes
    in row-major order through a view of the slice, saving the copy a reshape of a permuted view
    (attention heads merged back, `(B, nh, T, hs) -> (B, T, C)`) makes."""
    p = producer.get(g)
    if p is not None and p.name == "reshape" and uses.get(g) == 1 and not p.n_attr_inputs:
        return p.inputs[0]
    return g
