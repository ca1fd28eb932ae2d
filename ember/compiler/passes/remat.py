"""Rematerialisation: recompute a cheap elementwise value in the kernel that needs it after a
reduction, instead of storing it in the reduction's kernel and loading it back.

layer_norm's `xc = x - mean` feeds the variance (`sum(xc * xc)`) and the normalisation
(`xc * rstd`). The normalisation needs the finished reduction, so it cannot join the variance's
kernel, which would then have to write `xc` out (one full-size store and load) only for it. With
a copy of the `sub` next to the `mul`, the normalisation kernel computes `x - mean` itself from
values that are in memory anyway, and the variance kernel stores nothing full-size. Runs at the
start of fusion, after cse (which would merge the copy back).
"""

from __future__ import annotations

from ..graph import Graph, Node
from ..kernel_ir import POINTWISE, REDUCTIONS

CHEAP = {"add", "sub", "mul", "neg"}  # one instruction per element: cheaper to redo than to store and load


def rematerialize(graph: Graph) -> int:
    """Copy cheap elementwise nodes next to their post-reduction readers (see the module
    docstring); returns how many copies were made."""
    nodes = graph.nodes
    producer = {o: n for n in nodes for o in n.outs}
    users: dict = {}
    for n in nodes:
        for v in n.inputs:
            users.setdefault(v, []).append(n)
    after: dict = {}  # value -> reductions (node ids) whose result it is computed from, elementwise
    for n in nodes:
        if n.name in REDUCTIONS:
            after[n.outs[0]] = {id(n)} | after.get(n.inputs[0], set())
        elif n.name in POINTWISE:
            dep = set().union(*(after.get(v, set()) for v in n.inputs))
            if dep:
                after[n.outs[0]] = dep
    feeds: dict = {}  # value -> reductions that read it through elementwise nodes (their prologue)
    for n in reversed(nodes):
        if n.name in REDUCTIONS:
            feeds.setdefault(n.inputs[0], set()).add(id(n))
        elif n.name in POINTWISE and n.outs[0] in feeds:
            for v in n.inputs:
                feeds.setdefault(v, set()).update(feeds[n.outs[0]])
    roots = graph.roots()

    def waits_for(n, v) -> set:  # reductions v feeds whose result n reads: n cannot share v's kernel
        return set().union(*(after.get(u, set()) for u in n.inputs)) & feeds.get(v, set())

    def worth_it(v, waited: set) -> bool:
        p = producer.get(v)
        if p is None or p.name not in CHEAP or len(p.outs) != 1 or v in roots:
            return False
        # every other reader is one of those reductions or on their prologue only (so in v's kernel),
        # or also waits for them (and gets a copy too): then nothing has to store v
        return all(u.name in REDUCTIONS and id(u) in waited
                   or u.name in POINTWISE and (0 < len(feeds.get(u.outs[0], ())) and feeds[u.outs[0]] <= waited
                                               or waits_for(u, v))
                   for u in users[v])

    out: list = []
    count = 0
    for n in nodes:
        if n.name in POINTWISE:
            copies: dict = {}
            for j, v in enumerate(n.inputs):
                if v in copies:
                    n.inputs[j] = copies[v]
                    continue
                waited = waits_for(n, v)
                if not waited or graph.values[v].shape != graph.values[n.outs[0]].shape or not worth_it(v, waited):
                    continue
                p, val = producer[v], graph.values[v]
                copies[v] = graph.new_value(val.shape, val.dtype, "node")
                out.append(Node(p.op, list(p.inputs), dict(p.attrs), [copies[v]]))
                n.inputs[j] = copies[v]
                count += 1
        out.append(n)
    graph.nodes = out
    return count
