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


def assign_buffers(graph, schedule, kernels, persistent: set) -> dict:
    """Share buffers between persistent kernel outputs whose lifetimes do not overlap.

    A value lives from the step that writes it to the last step that reads it or any view of it
    (`graph.aliases`). Greedy in schedule order: a value takes a free buffer of the same shape,
    dtype and layout, else a new one. Returns {value id: slot number}."""
    produced_at: dict = {}
    last_use: dict = {}
    outputs: dict = {}
    for t, (kind, idx) in enumerate(schedule):
        if kind == "group":
            k = kernels[idx]
            ins = [a.vid for a in k.args if not a.output]
            for a in k.args:
                if a.output:
                    produced_at.setdefault(a.vid, t)
                    outputs[a.vid] = a
        else:
            n = graph.nodes[idx]
            ins = n.inputs
            for o in n.outs:
                produced_at.setdefault(o, t)
        for v in ins:
            last_use[v] = t
    for v in graph.roots():  # written back, returned or handed over after the last step
        last_use[v] = len(schedule)
    changed = True
    while changed:  # a view keeps its source alive as long as it is used
        changed = False
        for out, srcs in graph.aliases.items():
            for src in srcs:
                lu = last_use.get(out, produced_at.get(out, -1))
                if lu > last_use.get(src, -1):
                    last_use[src] = lu
                    changed = True
    slots: dict = {}  # key -> list of (free after step, slot id)
    assigned: dict = {}
    n_slots = 0
    for vid in sorted((v for v in outputs if v in persistent), key=lambda v: produced_at[v]):
        a, v = outputs[vid], graph.values[vid]
        key = (v.shape, v.dtype, a.order)
        start, end = produced_at[vid], last_use.get(vid, produced_at[vid])
        free = slots.setdefault(key, [])
        for i, (free_after, sid) in enumerate(free):
            if free_after < start:
                free[i] = (end, sid)
                assigned[vid] = sid
                break
        else:
            free.append((end, n_slots))
            assigned[vid] = n_slots
            n_slots += 1
    return assigned
