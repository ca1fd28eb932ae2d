"""Fusion: group elementwise chains (with broadcasting) and a reduction with its elementwise prologue
into kernels, then lower each group to kernel IR (kernel_ir.py).

Greedy, in program order: an elementwise node joins the open group that produced one of its
inputs when the group computes over the same shape; a reduction closes the group that produced
its input. A group closes as soon as a node outside it reads one of its values, so running a
group at the position of its last node never reads a value before it is computed.

Then groups that run back to back over one shape, at least one of them a reduction over the
innermost dims and the others reducing the same dims or none, become one row kernel: its phases
run one after another for each row (layer norm: the mean, then the variance from it, then the
normalised row), so the row is read from memory once instead of once per kernel. Lowering
keeps them apart where a phase would read a value of another row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ... import dtype as dt
from ..graph import AttrRef
from ..kernel_ir import CTYPES, POINTWISE, REDUCTIONS, Arg, Kernel, broadcast_strides, coalesce, contiguous_strides
from .copies import lower_copy, lower_gather, lower_scatter
from .onehot import index_guards
from .remat import rematerialize


@dataclass
class Group:
    shape: tuple
    members: list = field(default_factory=list)  # node indices, program order (the prologue)
    reduce: int | None = None
    open: bool = True
    out_shape: tuple | None = None  # the reduction's output shape: what epilogue nodes compute over
    epilogue: list = field(default_factory=list)  # elementwise nodes applied to the reduced value
    phases: list = field(default_factory=list)  # a row kernel: the Groups it runs per row, in order
    phase_ids: list = field(default_factory=list)  # ... and their indices in the group list
    row_dims: tuple = ()  # a row kernel: the inner (reduced) dims each phase loops over per row

    def all_nodes(self) -> list:
        if self.phases:
            return [i for p in self.phases for i in p.all_nodes()]
        return self.members + ([self.reduce] if self.reduce is not None else []) + self.epilogue


def _fusable(graph, n, guards: dict) -> str | None:
    """What node n becomes: "pointwise", "reduce", "copy" (a kernel of its own) or None (left to its
    registry kernel). `guards`: index values checked to lie in [0, n) (onehot.index_guards)."""
    if n.kind == "special" or n.name not in POINTWISE and n.name not in REDUCTIONS and n.name not in COPIES:
        return None
    out = graph.values[n.outs[0]] if len(n.outs) == 1 else None
    if out is None or out.dtype not in CTYPES or any(graph.values[i].dtype not in CTYPES for i in n.inputs):
        return None
    if 0 in out.shape:
        return None
    if n.name in ("index_add_into", "getitem"):  # x[idx] (its range guarded) and its backward, one
        idx = graph.values[n.inputs[-1]]     # integer index array: a gather or scatter-add kernel
        ok = n.n_attr_inputs == 1 and n.attrs["key"] == (AttrRef(0),) and idx.dtype.category == 1
        if ok and n.name == "getitem":
            ok = guards.get(n.inputs[-1]) == graph.values[n.inputs[0]].shape[0]
        return "copy" if ok else None
    if n.n_attr_inputs:
        return None
    if n.name == "assemble_slices":
        return "copy"
    if n.name in REDUCTIONS:
        x = graph.values[n.inputs[0]]
        boolean = n.name in ("any", "all")  # a bool result, of any input
        if (out.dtype is not dt.bool_ if boolean else out.dtype.category != 2) or 0 in x.shape or \
                x.strides is None and x.source != "node":
            return None
        return "reduce"
    if n.name == "cast" and n.attrs["dtype"] not in CTYPES:
        return None
    if n.name == "gelu_backward" and n.attrs.get("approximate") != "tanh":
        return None  # the erf form uses ember's own erf kernel: left to the registry
    return "pointwise"


COPIES = {"assemble_slices": lower_copy, "index_add_into": lower_scatter, "getitem": lower_gather}  # (copies.py)
# merge adjacent row-wise groups into row kernels (False: one kernel per group, to compare)
ROW_KERNELS = True
# ... with column sums over the same rows as phases of them (False: column sums stay kernels of their own)
ROW_COLUMN_PHASES = True


def _reduced_dims(n, nd: int) -> tuple:
    dims = n.attrs.get("dims")
    return tuple(range(nd)) if dims is None else tuple(sorted(d % nd for d in dims))


def _column(graph, n, shape) -> bool:
    """Whether reduction node `n` over `shape` keeps the innermost dim (a column reduction: the
    reduced dims are not the innermost in memory)."""
    nd = len(shape)
    red = _reduced_dims(n, nd)
    kept = [d for d in range(nd) if d not in red]
    return bool(red) and bool(kept) and max(red) < max(kept)


def _epilogue_ok(graph, grp: Group, n, producer) -> bool:
    """An epilogue node may read the reduced value, earlier epilogue values and outside values,
    but not the full-size prologue values (those live on the inner loops)."""
    inner = set(grp.members)
    return not any(producer.get(v) in inner for v in n.inputs)


def fuse(graph) -> tuple[list, list]:
    """Returns (groups, schedule): schedule items are ("node", i) or ("group", g) in run order.
    First copies cheap values next to their post-reduction readers (passes/remat.py)."""
    rematerialize(graph)
    guards = index_guards(graph)
    producer = {o: i for i, n in enumerate(graph.nodes) for o in n.outs}
    groups: list[Group] = []
    group_of: dict = {}
    schedule: list = []
    for i, n in enumerate(graph.nodes):
        kind = _fusable(graph, n, guards)
        in_groups = {group_of[producer[v]] for v in n.inputs if v in producer and producer[v] in group_of}
        if kind == "pointwise":
            shape = graph.values[n.outs[0]].shape
            cands = [g for g in in_groups if groups[g].open and groups[g].shape == shape
                     and groups[g].reduce is None]
            epi = [g for g in in_groups if groups[g].open and groups[g].reduce is not None
                   and groups[g].out_shape == shape and _epilogue_ok(graph, groups[g], n, producer)]
            target = max(cands + epi) if cands + epi else None
            if target in cands:  # other open elementwise groups it reads join it: no one outside read
                for g in cands:  # them yet, so they may run later, at this group's position
                    if g != target:
                        _absorb(groups, group_of, schedule, target, g)
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
            if groups[target].reduce is not None:
                groups[target].epilogue.append(i)
            else:
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
            groups[target].out_shape = graph.values[n.outs[0]].shape
            groups[target].open = not _column(graph, n, shape)  # epilogue nodes may still join
            group_of[i] = target
        elif kind == "copy":  # a kernel of its own (passes/copies.py)
            for g in in_groups:
                groups[g].open = False
            groups.append(Group(graph.values[n.outs[0]].shape, [i], open=False))
            group_of[i] = len(groups) - 1
            schedule.append(("group", len(groups) - 1))
        else:
            for g in in_groups:
                groups[g].open = False
            if n.kind == "special" and n.op == "optimizer_step":
                for g in groups:
                    g.open = False
            schedule.append(("node", i))
    return groups, (_merge_rows(graph, groups, schedule) if ROW_KERNELS else schedule)


def _absorb(groups: list, group_of: dict, schedule: list, target: int, g: int) -> None:
    """Move open elementwise group g's nodes into group target (both over one shape); g is left
    empty and unscheduled."""
    src = groups[g]
    groups[target].members = sorted(groups[target].members + src.members)
    for i in src.members:
        group_of[i] = target
    src.members, src.open = [], False
    schedule.remove(("group", g))


def _column_phase(graph, grp: Group) -> tuple | None:
    """The dims a column sum keeps, if the group can be a column phase of a row kernel: a `sum`
    (with its elementwise prologue, no epilogue) over the leading dims that keeps the trailing ones
    (a bias or layer-norm weight gradient: (B, T, C) summed to (C,)). Per row it adds the row into
    partial sums; they are complete only when every row is done."""
    if grp.phases or grp.reduce is None or grp.epilogue:
        return None
    rn = graph.nodes[grp.reduce]
    nd = len(grp.shape)
    red = _reduced_dims(rn, nd)
    if rn.name != "sum" or not red or len(red) == nd or red != tuple(range(len(red))) or \
            graph.values[rn.outs[0]].dtype.category != 2:
        return None
    return tuple(range(len(red), nd))


def _row_split(graph, grp: Group):
    """The dims a group loops over per row if it can be a phase of a row kernel: the dims it reduces
    (a row reduction), the dims it keeps (a column phase), () for an elementwise group (it can loop
    over any split), None for one that cannot (a copy, another column reduction, a reduction to a
    scalar)."""
    if grp.phases:
        return grp.row_dims
    if graph.nodes[grp.all_nodes()[0]].name in COPIES:
        return None
    if grp.reduce is None:
        return ()
    keep = _column_phase(graph, grp)
    if keep is not None:
        return keep if ROW_COLUMN_PHASES else None
    rn = graph.nodes[grp.reduce]
    red = _reduced_dims(rn, len(grp.shape))
    if _column(graph, rn, grp.shape) or len(red) == len(grp.shape):
        return None
    return red


def _column_sums(graph, grp: Group) -> set:
    """The values a group's column phases produce (complete only after the whole kernel)."""
    phases = grp.phases or [grp]
    return {graph.nodes[p.reduce].outs[0] for p in phases if _column_phase(graph, p) is not None}


def _merge_rows(graph, groups: list, schedule: list) -> list:
    """The schedule with each run of adjacent groups that can share row loops (same shape, the
    reductions among them over the same dims, at least one reduction) replaced by one row-kernel
    Group appended to `groups`; its phases keep their own entries in `groups`. A column sum over
    those rows joins too (a column phase), unless a later phase reads its result."""
    out: list = []
    for item in schedule:
        prev = out[-1] if out else None
        if item[0] == "group" and prev is not None and prev[0] == "group":
            g1, g2 = groups[prev[1]], groups[item[1]]
            r1, r2 = _row_split(graph, g1), _row_split(graph, g2)
            reads = {v for i in g2.all_nodes() for v in graph.nodes[i].inputs}
            if r1 is not None and r2 is not None and g1.shape == g2.shape and (r1 or r2) and \
                    (r1 == r2 or not r1 or not r2) and not reads & _column_sums(graph, g1):
                if not g1.phases:
                    groups.append(Group(g1.shape, open=False, phases=[g1], phase_ids=[prev[1]]))
                    g1 = groups[-1]
                    out[-1] = ("group", len(groups) - 1)
                g1.phases.append(g2)
                g1.phase_ids.append(item[1])
                g1.row_dims = r1 or r2
                continue
        out.append(item)
    return out


def lower(graph, groups: list, schedule: list) -> tuple[list, dict]:
    """Kernel IR for every group, and the strides (bytes) each kernel-made value will have."""
    roots = graph.roots()
    users: dict = {}
    for i, n in enumerate(graph.nodes):
        for v in n.inputs:
            users.setdefault(v, set()).add(i)
    made: dict = {}  # vid -> contiguous byte strides (values kernels write)
    kernels = {}
    lowered = []
    for item in schedule:
        if item[0] != "group":
            lowered.append(item)
            continue
        grp = groups[item[1]]
        first = graph.nodes[grp.all_nodes()[0]]
        if grp.phases:
            k = _lower_rows(graph, grp, f"k{item[1]}", users, roots, made)
            if k is None:  # a phase would read another row's values: one kernel per phase after all
                for gi in grp.phase_ids:
                    kernels[gi] = _lower_group(graph, groups[gi], f"k{gi}", users, roots, made)
                    lowered.append(("group", gi))
                continue
        elif first.name in COPIES:
            k = COPIES[first.name](graph, grp, f"k{item[1]}", made)
            if k is None:  # an input layout the loop nests cannot express: the registry kernel runs it
                lowered.append(("node", grp.members[0]))
                continue
        else:
            k = _lower_group(graph, grp, f"k{item[1]}", users, roots, made)
        kernels[item[1]] = k
        lowered.append(item)
    schedule[:] = lowered
    return kernels, made


def _lower_rows(graph, grp: Group, name: str, users, roots, made) -> Kernel | None:
    """A row kernel: each phase lowered over the same loop order (kept dims outer, row_dims
    inner), its loops coalesced over all phases' arguments together. None if a phase reads a value
    an earlier phase stores at other strides than it was stored with (another row's element)."""
    nd = len(grp.shape)
    red = grp.row_dims
    order = [d for d in range(nd) if d not in red] + list(red)
    row = (order, nd - len(red))
    phases = [_lower_group(graph, g, f"{name}_{i}", users, roots, made, row=row, merge_loops=False)
              for i, g in enumerate(grp.phases)]
    stored: dict = {}
    for p in phases:
        if any(not a.output and a.vid in stored and a.strides != stored[a.vid] for a in p.args):
            return None
        stored.update((a.vid, a.strides) for a in p.args if a.output)
    k = Kernel(name, phases[0].dims, row[1], args=[a for p in phases for a in p.args],
               reduce=next(p.reduce for p in phases if p.reduce is not None),
               nodes=sorted(i for p in phases for i in p.nodes), phases=phases)
    coalesce(k)  # the phases share the Arg objects: their strides follow
    if any(p.column for p in phases) and k.n_outer != 1:
        return None  # column phases split one outer loop into fixed chunks (codegen_c.py)
    for p in phases:
        p.dims, p.n_outer = k.dims, k.n_outer
    return k


def layout_strides(shape, order) -> tuple:
    """Element strides of a buffer of `shape` laid out row-major in dim order `order`."""
    st = [0] * len(shape)
    acc = 1
    for d in reversed(order):
        st[d] = acc
        acc *= shape[d]
    return tuple(st)


def _memory_order(graph, grp: Group, made) -> list:
    """Loop order for an elementwise group: the memory order of its first full-size operand, so a
    permuted input (a conv output seen as (N, C, HW)) is read contiguously, as NumPy would."""
    nd = len(grp.shape)
    inside = {o for i in grp.members for o in graph.nodes[i].outs}
    for i in grp.members:
        for v in graph.nodes[i].inputs:
            val = graph.values[v]
            if v in inside or val.shape != grp.shape:
                continue
            sb = made.get(v, val.strides)
            if sb is None or any(s <= 0 for s in sb):
                continue
            return sorted(range(nd), key=lambda d: -sb[d])
    return list(range(nd))


def _lower_group(graph, grp: Group, name: str, users, roots, made, row=None, merge_loops: bool = True) -> Kernel:
    """Kernel IR for an elementwise or reduction group; `row` = (loop order, number of outer
    loops) imposes a row kernel's loops on a phase, whose loops its row kernel then coalesces."""
    vals = graph.values
    members = set(grp.all_nodes())
    nd = len(grp.shape)
    col_phase = row is not None and grp.reduce is not None and _column_phase(graph, grp) is not None
    if row is not None and (grp.reduce is None or col_phase):
        order, n_outer = list(row[0]), row[1]
    elif grp.reduce is not None:
        rn = graph.nodes[grp.reduce]
        red = _reduced_dims(rn, nd)
        order = [d for d in range(nd) if d not in red] + [d for d in range(nd) if d in red]
        n_outer = nd - len(red)
    else:
        order, n_outer = _memory_order(graph, grp, made), nd
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
            # outputs follow the loop order (as NumPy's ufuncs keep their input's layout)
            cs = layout_strides(grp.shape, order if grp.reduce is None else range(nd))
            k.args.append(Arg(out, vals[out].dtype, tuple(cs[d] for d in order), output=True,
                              order=tuple(order) if grp.reduce is None else None))
            k.stores.append((len(k.args) - 1, tmp_of[out]))
            made[out] = tuple(s * vals[out].dtype.itemsize for s in cs)
    if grp.reduce is not None:
        rn = graph.nodes[grp.reduce]
        src = load(rn.inputs[0])
        if src[0] == "load":  # a bare reduction: read its input into a temporary
            k.lets.append((vals[rn.inputs[0]].dtype, src))
            src = ("tmp", len(k.lets) - 1)
        out = vals[rn.outs[0]]
        if col_phase:  # summed over the outer (row) loops: one slot per point of the inner ones
            cs = contiguous_strides([grp.shape[d] for d in order[n_outer:]])
            k.args.append(Arg(rn.outs[0], out.dtype, (0,) * n_outer + tuple(cs), output=True))
            k.reduce = (rn.name, src[1], len(k.args) - 1, out.dtype)
            k.column = True
            made[rn.outs[0]] = tuple(s * out.dtype.itemsize for s in contiguous_strides(out.shape))
            return k
        kept = [grp.shape[d] for d in order[:n_outer]]
        cs = contiguous_strides(kept)
        k.args.append(Arg(rn.outs[0], out.dtype, tuple(cs) + (0,) * (nd - n_outer), output=True))
        k.reduce = (rn.name, src[1], len(k.args) - 1, out.dtype)
        # the reduced dims lie outside the innermost (bias gradients, x.sum(1)): walk memory in order
        k.column = _column(graph, rn, grp.shape)
        if k.column:
            k.column_outer = sum(1 for d in order[:n_outer] if d < min(red))
        made[rn.outs[0]] = tuple(s * out.dtype.itemsize for s in contiguous_strides(out.shape))
        if grp.epilogue:
            _lower_epilogue(graph, grp, k, order, n_outer, users, roots, made, members)
    return coalesce(k) if merge_loops else k


def _lower_epilogue(graph, grp, k, order, n_outer, users, roots, made, members) -> None:
    """Elementwise nodes over the reduced value: evaluated once per output point, after the
    reduction loop, reading other operands at outer-loop offsets only."""
    vals = graph.values
    rn = graph.nodes[grp.reduce]
    out_shape = grp.out_shape
    keepdim = len(out_shape) == len(grp.shape)
    kept = order[:n_outer]
    nd = len(grp.shape)
    etmp = {rn.outs[0]: ("red",)}
    epi_arg: dict = {}

    def loop_strides(elem_strides_out) -> tuple:
        st = []
        for j in range(nd):
            if j >= n_outer:
                st.append(0)
            else:
                d = order[j]
                st.append(elem_strides_out[d] if keepdim else elem_strides_out[kept.index(d)])
        return tuple(st)

    def load(vid):
        if vid in etmp:
            return etmp[vid]
        if vid not in epi_arg:
            v = vals[vid]
            sb = made.get(vid, v.strides)
            st = broadcast_strides(v.shape, sb, v.dtype.itemsize, out_shape)
            epi_arg[vid] = len(k.args)
            k.args.append(Arg(vid, v.dtype, loop_strides(st)))
        return ("load", epi_arg[vid])

    cs = contiguous_strides(out_shape)
    for i in grp.epilogue:
        n = graph.nodes[i]
        expr = ("op", n.name, tuple(load(v) for v in n.inputs), n.attrs, tuple(vals[v].dtype for v in n.inputs))
        out = n.outs[0]
        k.epilogue.append((vals[out].dtype, expr))
        etmp[out] = ("etmp", len(k.epilogue) - 1)
        if out in roots or users.get(out, set()) - members:
            k.args.append(Arg(out, vals[out].dtype, loop_strides(cs), output=True))
            k.epi_stores.append((len(k.args) - 1, len(k.epilogue) - 1))
            made[out] = tuple(s * vals[out].dtype.itemsize for s in cs)
