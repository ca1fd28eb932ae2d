"""Memory planning report: liveness of every intermediate buffer over the schedule.

`plan_peak` is the largest total of buffers alive at once when each is freed after its last
use; `eager_total` is every intermediate the graph allocates (eager keeps many of them alive
until backward). Buffer reuse itself is left to NumPy's allocator (see docs/compiler.md).
"""

from __future__ import annotations


def liveness(graph, schedule, groups, kernels) -> dict:
    """{'plan_peak': bytes, 'eager_total': bytes, 'materialized': n values} for the schedule."""
    produced_at: dict = {}
    last_use: dict = {}
    roots = graph.roots()
    for t, (kind, idx) in enumerate(schedule):
        if kind == "group":
            k = kernels.get(idx)
            outs = [a.vid for a in k.args if a.output] if k else []
            ins = [a.vid for a in k.args if not a.output] if k else []
        else:
            n = graph.nodes[idx]
            outs, ins = n.outs, n.inputs
        for v in outs:
            produced_at.setdefault(v, t)
        for v in ins:
            last_use[v] = t
    end = len(schedule)
    events: dict = {}
    for v, t in produced_at.items():
        nb = graph.values[v].nbytes
        events[t] = events.get(t, 0) + nb
        free = end if v in roots else last_use.get(v, t) + 1
        events[free] = events.get(free, 0) - nb
    cur = peak = 0
    for t in sorted(events):
        cur += events[t]
        peak = max(peak, cur)
    eager_total = sum(graph.values[o].nbytes for n in graph.nodes for o in n.outs[:1])
    return {"plan_peak": peak, "eager_total": eager_total, "materialized": len(produced_at)}
