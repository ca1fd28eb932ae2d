"""Common-subexpression and dead-code elimination on a traced Graph.

CSE merges nodes with the same op, inputs and (simple) attributes; DCE drops nodes whose
results reach no output, write-back or gradient. Optimizer steps and guards have effects
and always stay.
"""

from __future__ import annotations

from ..graph import Graph, Ref

_EFFECTS = ("optimizer_step", "guard_bool", "random")  # kept even when unused: a draw advances its generator


def _simple(a) -> bool:
    if isinstance(a, (tuple, list)):
        return all(_simple(x) for x in a)
    return a is None or isinstance(a, (bool, int, float, str)) or type(a).__name__ == "DType"


def rename(graph: Graph, mapping: dict) -> None:
    """Replace uses of value ids by `mapping` everywhere in the graph."""
    if not mapping:
        return

    def r(v):
        while v in mapping:
            v = mapping[v]
        return v
    for n in graph.nodes:
        n.inputs = [r(v) for v in n.inputs]
    graph.writebacks = [(g, r(v)) for g, v in graph.writebacks]
    graph.grads = [(p, None if v is None else r(v)) for p, v in graph.grads]
    graph.outputs = _map_tree(graph.outputs, r)


def _map_tree(tree, f):
    if isinstance(tree, Ref):
        return Ref(f(tree.vid))
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map_tree(t, f) for t in tree)
    if isinstance(tree, dict):
        return {k: _map_tree(v, f) for k, v in tree.items()}
    return tree


def cse(graph: Graph) -> int:
    """Merge duplicate pure nodes; returns how many were merged."""
    seen: dict = {}
    mapping: dict = {}
    keep = []
    for n in graph.nodes:
        n.inputs = [mapping.get(v, v) for v in n.inputs]
        if n.kind != "special" and len(n.outs) == 1 and all(_simple(a) for a in n.attrs.values()):
            key = (n.name, tuple(n.inputs), tuple(sorted((k, repr(a)) for k, a in n.attrs.items())))
            prev = seen.get(key)
            if prev is not None:
                mapping[n.outs[0]] = prev
                continue
            seen[key] = n.outs[0]
        keep.append(n)
    graph.nodes = keep
    rename(graph, mapping)
    return len(mapping)


def dce(graph: Graph) -> int:
    """Drop nodes whose results are never used; returns how many were dropped."""
    live = graph.roots()
    keep = []
    for n in reversed(graph.nodes):
        if n.name in _EFFECTS or any(o in live for o in n.outs):
            keep.append(n)
            live.update(n.inputs)
    dropped = len(graph.nodes) - len(keep)
    graph.nodes = keep[::-1]
    used = live | set()
    graph.externals = {v: g for v, g in graph.externals.items() if v in used}
    return dropped
