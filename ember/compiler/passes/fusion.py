"""Fusion: group elementwise chains (with broadcasting) and a reduction with its elementwise prologue
into kernels, then lower each group to kernel IR (kernel_ir.py).

Greedy, in program order: an elementwise node joins the open group that produced one of its
inputs when the group computes over the same shape; a reduction closes the group that produced
its input. A group closes as soon as a node outside it reads one of its values, so running a
group at the position of its last node never reads a value before it is computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..kernel_ir import CTYPES, POINTWISE, REDUCTIONS, Arg, Kernel, broadcast_strides, coalesce, \
    contiguous_strides


@dataclass
class Group:
    shape: tuple
    members: list = field(default_factory=list)  # node indices, program order
    reduce: int | None = None
    open: bool = True


def _fusable(graph, n) -> str | None:
    if n.kind == "special" or n.name not in POINTWISE and n.name not in REDUCTIONS:
        return None
    if len(n.outs) != 1:
        return None
    out = graph.values[n.outs[0]]
    if out.dtype not in CTYPES or any(graph.values[i].dtype not in CTYPES for i in n.inputs):
        return None
    if 0 in out.shape:
        return None
    if n.name in REDUCTIONS:
        x = graph.values[n.inputs[0]]
        if out.dtype.category != 2 or 0 in x.shape or x.strides is None and x.source != "node":
            return None
        return "reduce"
    if n.name == "cast" and n.attrs["dtype"] not in CTYPES:
        return None
    return "pointwise"


def fuse(graph) -> tuple[list, list]:
    """Returns (groups, schedule): schedule items are ("node", i) or ("group", g) in run order."""
    producer = {o: i for i, n in enumerate(graph.nodes) for o in n.outs}
    groups: list[Group] = []
    group_of: dict = {}
    schedule: list = []
    for i, n in enumerate(graph.nodes):
        kind = _fusable(graph, n)
        in_groups = {group_of[producer[v]] for v in n.inputs if v in producer and producer[v] in group_of}
        if kind == "pointwise":
            shape = graph.values[n.outs[0]].shape
            cands = [g for g in in_groups if groups[g].open and groups[g].shape == shape
                     and groups[g].reduce is None]
            target = max(cands) if cands else None
            for g in in_groups:
                if g != target:
                    groups[g].open = False
            if target is None:
                groups.append(Group(shape))
                target = len(groups) - 1
                schedule.append(("group", target))
            else:  # the group now runs here, at its last member
                schedule.remove(("group", target))
                schedule.append(("group", target))
            groups[target].members.append(i)
            group_of[i] = target
        elif kind == "reduce":
            shape = graph.values[n.inputs[0]].shape
            cands = [g for g in in_groups if groups[g].open and groups[g].shape == shape
                     and groups[g].reduce is None]
            target = max(cands) if cands else None
            for g in in_groups:
                if g != target:
                    groups[g].open = False
            if target is None:
                groups.append(Group(shape))
                target = len(groups) - 1
            else:
                schedule.remove(("group", target))
            schedule.append(("group", target))
            groups[target].reduce = i
            groups[target].open = False
            group_of[i] = target
        else:
            for g in in_groups:
                groups[g].open = False
            if n.kind == "special" and n.op == "optimizer_step":
                for g in groups:
                    g.open = False
            schedule.append(("node", i))
    return groups, schedule


def lower(graph, groups: list, schedule: list) -> tuple[list, dict]:
    """Kernel IR for every group, and the strides (bytes) each kernel-made value will have."""
    roots = graph.roots()
    users: dict = {}
    for i, n in enumerate(graph.nodes):
        for v in n.inputs:
            users.setdefault(v, set()).add(i)
    made: dict = {}  # vid -> contiguous byte strides (values kernels write)
    kernels = {}
    for item in schedule:
        if item[0] != "group":
            continue
        k = _lower_group(graph, groups[item[1]], f"k{item[1]}", users, roots, made)
        kernels[item[1]] = k
    return kernels, made


def _lower_group(graph, grp: Group, name: str, users, roots, made) -> Kernel:
    vals = graph.values
    members = set(grp.members) | ({grp.reduce} if grp.reduce is not None else set())
    nd = len(grp.shape)
    if grp.reduce is not None:
        rn = graph.nodes[grp.reduce]
        dims_attr = rn.attrs.get("dims")
        red = tuple(range(nd)) if dims_attr is None else tuple(d % nd for d in dims_attr)
        order = [d for d in range(nd) if d not in red] + [d for d in range(nd) if d in red]
        n_outer = nd - len(red)
    else:
        order, n_outer = list(range(nd)), nd
    dims = tuple(grp.shape[d] for d in order)
    k = Kernel(name, dims, n_outer, nodes=sorted(members))
    arg_of: dict = {}
    tmp_of: dict = {}

    def load(vid):
        if vid in tmp_of:
            return ("tmp", tmp_of[vid])
        if vid not in arg_of:
            v = vals[vid]
            sb = made.get(vid, v.strides)
            st = broadcast_strides(v.shape, sb, v.dtype.itemsize, grp.shape)
            arg_of[vid] = len(k.args)
            k.args.append(Arg(vid, v.dtype, tuple(st[d] for d in order)))
        return ("load", arg_of[vid])

    for i in grp.members:
        n = graph.nodes[i]
        expr = ("op", n.name, tuple(load(v) for v in n.inputs), n.attrs,
                tuple(vals[v].dtype for v in n.inputs))
        out = n.outs[0]
        k.lets.append((vals[out].dtype, expr))
        tmp_of[out] = len(k.lets) - 1
    for i in grp.members:
        out = graph.nodes[i].outs[0]
        if out in roots or users.get(out, set()) - members:
            cs = contiguous_strides(grp.shape)
            k.args.append(Arg(out, vals[out].dtype, tuple(cs[d] for d in order), output=True))
            k.stores.append((len(k.args) - 1, tmp_of[out]))
            made[out] = tuple(s * vals[out].dtype.itemsize for s in contiguous_strides(grp.shape))
    if grp.reduce is not None:
        rn = graph.nodes[grp.reduce]
        src = load(rn.inputs[0])
        if src[0] == "load":  # a bare reduction: read its input into a temporary
            k.lets.append((vals[rn.inputs[0]].dtype, src))
            src = ("tmp", len(k.lets) - 1)
        out = vals[rn.outs[0]]
        kept = [grp.shape[d] for d in order[:n_outer]]
        cs = contiguous_strides(kept)
        k.args.append(Arg(rn.outs[0], out.dtype, tuple(cs) + (0,) * (nd - n_outer), output=True))
        k.reduce = (rn.name, src[1], len(k.args) - 1, out.dtype)
        made[rn.outs[0]] = tuple(s * out.dtype.itemsize for s in contiguous_strides(out.shape))
    return coalesce(k)
