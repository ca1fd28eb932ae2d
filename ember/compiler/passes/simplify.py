"""Algebraic simplification as a table of (name, rule, reason) entries; `explain()` prints which fired.

A rule looks at one node and returns the value id that can replace its result, or None.
Constants are 0-d tensors captured by identity whose value is read at compile time.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, _leaves
from ..kernel_ir import POINTWISE
from .assemble import assemble_slices
from .cse_dce import rename
from .epilogue import matmul_act_backward, matmul_bias, matmul_bias_act, sdpa_backward_sum
from .onehot import onehot


def _const_value(graph: Graph, vid: int):
    v = graph.values[vid]
    if v.source != "const" or v.shape != ():
        return None
    return float(np.asarray(graph.externals[vid].get()))


def _same(graph, n, vid) -> bool:
    a, out = graph.values[vid], graph.values[n.outs[0]]
    return a.shape == out.shape and a.dtype is out.dtype


def _identity_operand(ident: float, positions=(0, 1)):
    def rule(graph, n):
        for pos in positions:
            other = n.inputs[1 - pos]
            if _const_value(graph, n.inputs[pos]) == ident and _same(graph, n, other):
                return other
        return None
    return rule


def _cast_same(graph, n):
    src = n.inputs[0]
    return src if graph.values[src].dtype is n.attrs["dtype"] else None


def _reshape_noop(graph, n):
    src = n.inputs[0]
    return src if graph.values[src].shape == graph.values[n.outs[0]].shape else None


def _permute_noop(graph, n):
    dims = n.attrs.get("dims")
    return n.inputs[0] if dims is not None and tuple(dims) == tuple(range(len(dims))) else None


def _reshape_chain(graph, n):
    """reshape(reshape(x)) -> reshape(x): rewrite the input in place, keep the node."""
    prod = graph._producer.get(n.inputs[0])
    if prod is not None and prod.name == "reshape":
        n.inputs = [prod.inputs[0]]
    return None


def _permute_chain(graph, n):
    """permute(permute(x, a), b) -> permute(x, a[b]): rewrite the input in place (an identity
    permutation is then dropped by the rule before)."""
    prod = graph._producer.get(n.inputs[0])
    if prod is not None and prod.name == "permute" and not prod.n_attr_inputs and not n.n_attr_inputs:
        inner, outer = prod.attrs["dims"], n.attrs["dims"]
        n.inputs = [prod.inputs[0]]
        n.attrs = dict(n.attrs, dims=tuple(inner[d] for d in outer))
        return _permute_noop(graph, n)
    return None


def _copy_unexposed(graph, n):
    """SSA values are never written in place during a replay, so a copy (the engine's fresh `.grad`
    buffer) can share its source, unless two results handed to the user would share one buffer."""
    exposed = {vid for _, vid in graph.grads} | set(_leaves(graph.outputs))
    src = n.inputs[0]
    if graph.values[src].source != "node" or src in exposed:
        return None
    if n.outs[0] in exposed and graph._copy_sources.get(src, 0) > 1:
        return None
    return src


RULES = [
    ("mul", _identity_operand(1.0), "x * 1 = x"),
    ("add", _identity_operand(0.0), "x + 0 = x"),
    ("sub", _identity_operand(0.0, positions=(1,)), "x - 0 = x"),
    ("div", _identity_operand(1.0, positions=(1,)), "x / 1 = x"),
    ("cast", _cast_same, "cast to the dtype it has"),
    ("reshape", _reshape_noop, "reshape to the same shape"),
    ("reshape", _reshape_chain, "reshape of a reshape is one reshape"),
    ("permute", _permute_noop, "identity permutation"),
    ("permute", _permute_chain, "permute of a permute is one permute (a transpose of a transpose: none)"),
    ("copy", _copy_unexposed, "a copy of a value nothing writes is the value"),
]


EXPAND_REASON = "an expand read only by elementwise ops that broadcast anyway is dropped"
ONEHOT_REASON = ("a gather (or scatter_add) of one index per row is a one-hot select and sum (add), which fuse "
                 "with the ops around them")
ASSEMBLE_REASON = "a sum of index_add_into of disjoint slices is one assemble_slices"
EPILOGUE_REASON = "matmul then a bias add is one matmul_bias (the bias is the product's epilogue)"
ACT_REASON = "an activation of a matmul_bias is its epilogue (matmul_bias_act)"
SDPA_SUM_REASON = ("the bias gradient of a fused qkv projection, summed from attention's dq, dk, dv, is computed "
                   "by the attention backward (sdpa_backward_sum)")
ACT_GRAD_REASON = ("an activation's backward of a matmul (and the bias gradient summed from it) is its epilogue "
                   "(matmul_act_backward)")


def fold_expands(graph: Graph) -> int:
    """Drop `expand` nodes whose every reader is an elementwise op that broadcasts to the expanded
    shape anyway (another of its operands has that shape): a broadcast load is free in a fused
    kernel, a materialised expand is a NumPy op of its own. Returns how many."""
    vals, roots = graph.values, graph.roots()
    users: dict = {}
    for n in graph.nodes:
        for v in n.inputs:
            users.setdefault(v, []).append(n)
    count = 0
    for n in graph.nodes:
        if n.name != "expand" or n.n_attr_inputs or n.outs[0] in roots:
            continue
        out = n.outs[0]
        shape = vals[out].shape
        readers = users.get(out, [])
        if not readers or any(u.name not in POINTWISE or u.n_attr_inputs or vals[u.outs[0]].shape != shape or
                              not any(v != out and vals[v].shape == shape for v in u.inputs) for u in readers):
            continue
        for u in readers:
            u.inputs = [n.inputs[0] if v == out else v for v in u.inputs]
        count += 1
    return count


def simplify(graph: Graph) -> list:
    """Apply RULES once over the graph, then the one-hot gathers (passes/onehot.py), the slice-assembly
    rewrite (passes/assemble.py) and the matmul epilogues (passes/epilogue.py); returns
    [(rule reason, node name)] for each rewrite."""
    fired = []
    mapping: dict = {}
    graph._producer = {}
    graph._copy_sources = {}
    for n in graph.nodes:
        if n.name == "copy":
            graph._copy_sources[n.inputs[0]] = graph._copy_sources.get(n.inputs[0], 0) + 1
    for n in graph.nodes:
        n.inputs = [mapping.get(v, v) for v in n.inputs]
        for name, rule, reason in RULES:
            if n.name == name and len(n.outs) == 1:
                before = list(n.inputs)
                r = rule(graph, n)
                if r is not None:
                    mapping[n.outs[0]] = r
                    fired.append((reason, n.name))
                    break
                if n.inputs != before:
                    fired.append((reason, n.name))
        for o in n.outs:
            graph._producer[o] = n
    del graph._producer, graph._copy_sources
    rename(graph, mapping)
    fired += [(EXPAND_REASON, "expand")] * fold_expands(graph)
    fired += [(ONEHOT_REASON, "gather")] * onehot(graph)
    fired += [(ASSEMBLE_REASON, "add")] * assemble_slices(graph)
    fired += [(EPILOGUE_REASON, "add")] * matmul_bias(graph)
    fired += [(ACT_REASON, "matmul_bias")] * matmul_bias_act(graph)
    fired += [(ACT_GRAD_REASON, "matmul")] * matmul_act_backward(graph)
    fired += [(SDPA_SUM_REASON, "sum")] * sdpa_backward_sum(graph)
    return fired
