"""The compiler's IR: a flat list of registry-op nodes over SSA values (one value per buffer state).

trace.py fills a Graph by recording what `apply` runs; passes/ rewrite it; fusion groups
its nodes into kernels (kernel_ir.py). Values are numbered; each is produced once: by a
node, or as an external (a function input, a parameter or other tensor reached by identity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Value:
    """One buffer state: `shape`, `dtype` (an ember DType) and where it comes from."""

    id: int
    shape: tuple
    dtype: object
    source: str  # "input", "param", "const", "grad", "node", "saved"
    strides: tuple | None = None  # bytes, as the traced buffer had them

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


@dataclass
class Node:
    """One op call: `op` is a registry Op class (or a pseudo-op name string), `inputs`/`outs`
    are value ids; `outs[1]` (when present) is the buffer the kernel saved for backward."""

    op: object
    inputs: list
    attrs: dict
    outs: list
    n_attr_inputs: int = 0  # the last inputs are buffers the op takes inside attrs (AttrRef)

    @property
    def name(self) -> str:
        return self.op if isinstance(self.op, str) else self.op.name

    @property
    def kind(self) -> str:
        return "special" if isinstance(self.op, str) else self.op.kind


@dataclass
class Graph:
    """Values, nodes in program order, externals (value id -> how to fetch it at replay),
    write-backs (live buffer <- value at the end of a replay) and the output structure."""

    values: dict = field(default_factory=dict)
    nodes: list = field(default_factory=list)
    externals: dict = field(default_factory=dict)  # value id -> getter (see trace.py)
    writebacks: list = field(default_factory=list)  # (getter, value id)
    grads: list = field(default_factory=list)  # (param tensor, value id or None): final .grad
    outputs: object = None  # the function's result with each Tensor replaced by a Ref
    aliases: dict = field(default_factory=dict)  # value id -> input value ids its buffer shared when traced

    def new_value(self, shape, dtype, source: str) -> int:
        vid = len(self.values)
        self.values[vid] = Value(vid, tuple(shape), dtype, source)
        return vid

    def roots(self) -> set:
        """Values that must be computed: outputs, write-backs and final gradients."""
        out = {vid for _, vid in self.writebacks}
        out |= {vid for _, vid in self.grads if vid is not None}
        out |= set(_leaves(self.outputs))
        for n in self.nodes:
            if n.kind == "special" and n.op == "optimizer_step":
                out |= set(n.inputs)
        return out

    def copy(self) -> Graph:
        g = Graph(dict(self.values), [Node(n.op, list(n.inputs), dict(n.attrs), list(n.outs), n.n_attr_inputs)
                                      for n in self.nodes],
                  dict(self.externals), list(self.writebacks), list(self.grads), self.outputs, dict(self.aliases))
        return g

    def format(self) -> str:
        """One line per node: `%3 = mul(%1, %2) (64, 10) float32`."""
        lines = []
        for vid, g in self.externals.items():
            v = self.values[vid]
            lines.append(f"%{vid}: {v.source} {_shape(v.shape)} {v.dtype}  <- {g.describe()}")
        for n in self.nodes:
            v = self.values[n.outs[0]] if n.outs else None
            attrs = ", ".join(f"{k}={_short(a)}" for k, a in n.attrs.items() if k != "optimizer")
            args = ", ".join(f"%{i}" for i in n.inputs)
            tail = f" {_shape(v.shape)} {v.dtype}" if v is not None else ""
            outs = ", ".join(f"%{o}" for o in n.outs) or "_"
            lines.append(f"{outs} = {n.name}({args}{', ' if args and attrs else ''}{attrs}){tail}")
        for getter, vid in self.writebacks:
            lines.append(f"{getter.describe()} <- %{vid}")
        lines.append(f"return {list(_leaves(self.outputs))}")
        return "\n".join(lines)

    def to_dot(self, groups: list | None = None) -> str:
        """The graph as Graphviz dot; nodes of one fusion group share a cluster."""
        owner = {}
        for gi, grp in enumerate(groups or []):
            for ni in grp:
                owner[ni] = gi
        lines = ["digraph ember {", "  rankdir=TB; node [shape=box, fontsize=10];"]
        for vid in self.externals:
            v = self.values[vid]
            lines.append(f'  v{vid} [label="%{vid} {v.source}\\n{_shape(v.shape)}", shape=ellipse];')
        clusters: dict = {}
        for i, n in enumerate(self.nodes):
            line = f'  n{i} [label="{n.name}\\n{_shape(self.values[n.outs[0]].shape) if n.outs else ""}"];'
            clusters.setdefault(owner.get(i), []).append(line)
        for gi, lines_ in clusters.items():
            if gi is None:
                lines += lines_
            else:
                lines += [f"  subgraph cluster_{gi} {{ label=\"kernel {gi}\"; style=dashed;"] + lines_ + ["  }"]
        producer = {o: i for i, n in enumerate(self.nodes) for o in n.outs}
        for i, n in enumerate(self.nodes):
            for a in n.inputs:
                src = f"n{producer[a]}" if a in producer else f"v{a}"
                lines.append(f"  {src} -> n{i};")
        lines.append("}")
        return "\n".join(lines)


@dataclass(frozen=True)
class AttrRef:
    """An array inside an op's attributes that is a traced value (index tensors of x[idx]):
    input number `n_real + index` of its node, substituted at replay."""

    index: int

    def __repr__(self) -> str:
        return f"<input +{self.index}>"


@dataclass(frozen=True)
class Ref:
    """A tensor in the output structure: the value it holds and whether it requires grad."""

    vid: int


def _leaves(tree):
    if isinstance(tree, Ref):
        yield tree.vid
    elif isinstance(tree, (list, tuple)):
        for t in tree:
            yield from _leaves(t)
    elif isinstance(tree, dict):
        for t in tree.values():
            yield from _leaves(t)


def _shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _short(a) -> str:
    s = repr(a)
    return s if len(s) < 40 else s[:37] + "..."
